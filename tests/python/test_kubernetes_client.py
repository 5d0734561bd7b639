"""The official Python `kubernetes` client against the test API server.

Run by tests/tests/python_client.rs with KUBECONFIG (the admin) and
RESTRICTED_KUBECONFIG (a user with no permissions) set; a second client stack
besides kubectl, helm and kube-rs.
"""

import json
import os
import threading
import time
import unittest
import uuid

from kubernetes import client, config, dynamic, watch
from kubernetes.client.rest import ApiException

config.load_kube_config()
ADMIN = client.ApiClient()


def control(path):
    """POST to the server's /__test endpoints (unauthenticated test controls)."""
    host = ADMIN.configuration.host
    r = ADMIN.rest_client.pool_manager.request("POST", host + path, body=b"{}")
    assert r.status == 200, r.data


class KubernetesClientTest(unittest.TestCase):
    def setUp(self):
        self.core = client.CoreV1Api(ADMIN)
        self.ns = "py-" + uuid.uuid4().hex[:8]
        self.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.ns)))

    def tearDown(self):
        self.core.delete_namespace(self.ns)

    def test_crud_and_errors(self):
        cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cfg", labels={"app": "x"}), data={"k": "v"})
        created = self.core.create_namespaced_config_map(self.ns, cm)
        self.assertTrue(created.metadata.uid)
        with self.assertRaises(ApiException) as e:
            self.core.create_namespaced_config_map(self.ns, cm)
        self.assertEqual(e.exception.status, 409)
        self.assertEqual(json.loads(e.exception.body)["reason"], "AlreadyExists")
        patched = self.core.patch_namespaced_config_map("cfg", self.ns, {"data": {"k": "w"}})
        self.assertEqual(patched.data, {"k": "w"})
        patched.data["k2"] = "x"
        replaced = self.core.replace_namespaced_config_map("cfg", self.ns, patched)
        self.assertEqual(replaced.data, {"k": "w", "k2": "x"})
        self.assertGreater(int(replaced.metadata.resource_version), int(created.metadata.resource_version))
        stale = created
        stale.data = {"k": "stale"}
        with self.assertRaises(ApiException) as e:
            self.core.replace_namespaced_config_map("cfg", self.ns, stale)
        self.assertEqual(e.exception.status, 409)
        bad = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="bad", labels={"k": "x" * 64}))
        with self.assertRaises(ApiException) as e:
            self.core.create_namespaced_config_map(self.ns, bad)
        self.assertEqual(e.exception.status, 422)
        status = json.loads(e.exception.body)
        self.assertEqual(status["details"]["causes"][0]["field"], "metadata.labels")
        self.core.delete_namespaced_config_map("cfg", self.ns)
        with self.assertRaises(ApiException) as e:
            self.core.read_namespaced_config_map("cfg", self.ns)
        self.assertEqual(e.exception.status, 404)

    def test_pagination_with_continue(self):
        for i in range(7):
            self.core.create_namespaced_secret(self.ns, client.V1Secret(metadata=client.V1ObjectMeta(name=f"s{i}"), string_data={"k": str(i)}))
        names, token, pages = [], None, 0
        while True:
            page = self.core.list_namespaced_secret(self.ns, limit=3, _continue=token)
            names += [s.metadata.name for s in page.items]
            pages += 1
            token = page.metadata._continue
            if not token:
                break
        self.assertEqual(names, [f"s{i}" for i in range(7)])
        self.assertEqual(pages, 3)
        # A token outlives the history: 410 Gone.
        first = self.core.list_namespaced_secret(self.ns, limit=3)
        self.core.create_namespaced_secret(self.ns, client.V1Secret(metadata=client.V1ObjectMeta(name="later")))
        control("/__test/compact")
        with self.assertRaises(ApiException) as e:
            self.core.list_namespaced_secret(self.ns, limit=3, _continue=first.metadata._continue)
        self.assertEqual(e.exception.status, 410)

    def test_watch_resumes_and_recovers_from_410(self):
        start = self.core.list_namespaced_config_map(self.ns)
        rv = start.metadata.resource_version
        seen = []

        def make():
            time.sleep(0.3)
            for n in ("a", "b"):
                self.core.create_namespaced_config_map(self.ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=n)))

        threading.Thread(target=make).start()
        w = watch.Watch()
        for ev in w.stream(self.core.list_namespaced_config_map, self.ns, resource_version=rv, timeout_seconds=10):
            if ev["object"].metadata.name in ("a", "b"):
                seen.append((ev["type"], ev["object"].metadata.name))
            if len(seen) == 2:
                w.stop()
        self.assertEqual(seen, [("ADDED", "a"), ("ADDED", "b")])
        # Resume from a resourceVersion the history no longer holds: 410.
        control("/__test/compact")
        with self.assertRaises(ApiException) as e:
            for _ in watch.Watch().stream(self.core.list_namespaced_config_map, self.ns, resource_version=rv, timeout_seconds=5):
                pass
        self.assertEqual(e.exception.status, 410)
        # Recover as a client should: list again, watch from there.
        fresh = self.core.list_namespaced_config_map(self.ns)
        threading.Thread(target=lambda: (time.sleep(0.3), self.core.delete_namespaced_config_map("a", self.ns))).start()
        w = watch.Watch()
        for ev in w.stream(self.core.list_namespaced_config_map, self.ns, resource_version=fresh.metadata.resource_version, timeout_seconds=10):
            if ev["type"] == "DELETED":
                self.assertEqual(ev["object"].metadata.name, "a")
                w.stop()
                break
        else:
            self.fail("no DELETED event after recovering")

    def test_server_side_apply_with_the_dynamic_client(self):
        dyn = dynamic.DynamicClient(ADMIN)
        cms = dyn.resources.get(api_version="v1", kind="ConfigMap")
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": self.ns}, "data": {"k": "1"}}
        first = cms.server_side_apply(body=body, field_manager="py-client", namespace=self.ns)
        self.assertEqual(first.data.k, "1")
        managers = [(m.manager, m.operation) for m in first.metadata.managedFields]
        self.assertEqual(managers, [("py-client", "Apply")])
        body["data"] = {"k": "2"}
        with self.assertRaises(ApiException) as e:
            cms.server_side_apply(body=body, field_manager="someone-else", namespace=self.ns)
        self.assertEqual(e.exception.status, 409)
        second = cms.server_side_apply(body=body, field_manager="someone-else", namespace=self.ns, force_conflicts=True)
        self.assertEqual(second.data.k, "2")

    def test_forbidden_surfaces_as_api_exception_403(self):
        restricted = config.new_client_from_config(config_file=os.environ["RESTRICTED_KUBECONFIG"])
        with self.assertRaises(ApiException) as e:
            client.CoreV1Api(restricted).list_namespaced_secret(self.ns)
        self.assertEqual(e.exception.status, 403)
        status = json.loads(e.exception.body)
        self.assertEqual(status["reason"], "Forbidden")
        self.assertEqual(
            status["message"],
            f'secrets is forbidden: User "restricted" cannot list resource "secrets" in API group "" in the namespace "{self.ns}"',
        )
        review = client.AuthorizationV1Api(restricted).create_self_subject_access_review(
            client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(verb="list", resource="secrets", namespace=self.ns))))
        self.assertFalse(review.status.allowed)


if __name__ == "__main__":
    unittest.main(verbosity=2)
