{{/*
encstr sidecar, as named templates an application chart includes.

Pass the app chart's settings (merged over the defaults below), e.g. with
`.Values.encstr` holding at least keyringSecret and configMap:

  initContainers:
    {{- include "encstr-sidecar.container" .Values.encstr | nindent 8 }}
  containers:
    - name: app
      volumeMounts:
        {{- include "encstr-sidecar.appVolumeMount" .Values.encstr | nindent 12 }}
  volumes:
    {{- include "encstr-sidecar.volumes" .Values.encstr | nindent 8 }}

and, at the pod spec level, the fields the sidecar needs from the pod
(`shareProcessNamespace: true` when notify.signal is set):

  spec:
    {{- with include "encstr-sidecar.podSpec" .Values.encstr }}{{ . | nindent 6 }}{{ end }}

notify (native mode only) tells the app when a render changed its files:
  notify.signal + notify.process  send a signal (HUP, USR1, ...) to the app's
                                  processes of that name; this sets
                                  shareProcessNamespace: true on the pod, so
                                  the containers see each other's processes
                                  (and the app must run as the sidecar's user)
  notify.url                      POST to the app's reload endpoint
  notify.debounce                 quiet time before notifying (default 2s)
*/}}

{{- define "encstr-sidecar.settings" -}}
{{- $defaults := dict "image" "ghcr.io/encstr/encstr:0.1.0" "imagePullPolicy" "IfNotPresent" "mode" "native" "keyringSecret" "" "configMap" "" "targetPath" "/run/secrets/app" "sizeLimit" "1Mi" "namePrefix" "" "denyPlaintext" false "metricsPort" 9102 "notify" (dict "signal" "" "process" "" "url" "" "debounce" "") "resources" (dict "requests" (dict "cpu" "5m" "memory" "16Mi") "limits" (dict "memory" "32Mi")) -}}
{{- $s := mergeOverwrite $defaults (deepCopy (default (dict) .)) -}}
{{- if not $s.keyringSecret -}}{{- fail "encstr-sidecar: keyringSecret is required (the Secret of a SecretKeyring in the namespace, or the copy of a ClusterSecretKeyring)" -}}{{- end -}}
{{- if not $s.configMap -}}{{- fail "encstr-sidecar: configMap is required (the config files holding ENCSTR tokens)" -}}{{- end -}}
{{- if not (has $s.mode (list "native" "classic")) -}}{{- fail "encstr-sidecar: mode must be native or classic" -}}{{- end -}}
{{- $n := $s.notify -}}
{{- if and (or $n.signal $n.url $n.debounce) (eq $s.mode "classic") -}}{{- fail "encstr-sidecar: notify needs mode native (a classic init container renders once, before the app starts)" -}}{{- end -}}
{{- if and $n.signal (not $n.process) -}}{{- fail "encstr-sidecar: notify.signal needs notify.process (the app's process name)" -}}{{- end -}}
{{- if and $n.process (not $n.signal) -}}{{- fail "encstr-sidecar: notify.process needs notify.signal" -}}{{- end -}}
{{- toJson $s -}}
{{- end -}}

{{/* The encstr container, for initContainers. */}}
{{- define "encstr-sidecar.container" -}}
{{- $s := include "encstr-sidecar.settings" . | fromJson -}}
- name: encstr
  image: {{ $s.image }}
  imagePullPolicy: {{ $s.imagePullPolicy }}
  {{- if eq $s.mode "native" }}
  restartPolicy: Always
  {{- end }}
  args:
    - render
    {{- if eq $s.mode "native" }}
    - --watch
    - --listen=0.0.0.0:{{ $s.metricsPort }}
    - --log-format=json
    {{- end }}
    - --source=/etc/encstr/config
    - --target={{ $s.targetPath }}
    - --keyring=/etc/encstr/keyring/keyring
    {{- with $s.namePrefix }}
    - --name-prefix={{ . }}
    {{- end }}
    {{- if $s.denyPlaintext }}
    - --deny-plaintext
    {{- end }}
    {{- with $s.notify }}
    {{- if .signal }}
    - --notify-signal={{ .signal }}
    - --notify-process={{ .process }}
    {{- end }}
    {{- with .url }}
    - --notify-url={{ . }}
    {{- end }}
    {{- with .debounce }}
    - --notify-debounce={{ . }}
    {{- end }}
    {{- end }}
  terminationMessagePolicy: File
  {{- if eq $s.mode "native" }}
  ports:
    - name: encstr-metrics
      containerPort: {{ $s.metricsPort }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /readyz
      port: encstr-metrics
    periodSeconds: 1
    failureThreshold: 60
  livenessProbe:
    httpGet:
      path: /healthz
      port: encstr-metrics
    periodSeconds: 20
  {{- end }}
  resources:
    {{- toYaml $s.resources | nindent 4 }}
  securityContext:
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    runAsNonRoot: true
    capabilities:
      drop: ["ALL"]
  volumeMounts:
    - name: encstr-config
      mountPath: /etc/encstr/config
      readOnly: true
    - name: encstr-keyring
      mountPath: /etc/encstr/keyring
      readOnly: true
    - name: encstr-secrets
      mountPath: {{ $s.targetPath }}
{{- end -}}

{{/* The app container's read-only mount of the decrypted files. */}}
{{- define "encstr-sidecar.appVolumeMount" -}}
{{- $s := include "encstr-sidecar.settings" . | fromJson -}}
- name: encstr-secrets
  mountPath: {{ $s.targetPath }}
  readOnly: true
{{- end -}}

{{/* The pod volumes: config (ConfigMap), keyring (Secret), decrypted files (memory). */}}
{{- define "encstr-sidecar.volumes" -}}
{{- $s := include "encstr-sidecar.settings" . | fromJson -}}
- name: encstr-config
  configMap:
    name: {{ $s.configMap }}
- name: encstr-keyring
  secret:
    secretName: {{ $s.keyringSecret }}
    defaultMode: 0400
- name: encstr-secrets
  emptyDir:
    medium: Memory
    sizeLimit: {{ $s.sizeLimit }}
{{- end -}}

{{/* Pod-level fields the sidecar needs: shareProcessNamespace when it signals the app. */}}
{{- define "encstr-sidecar.podSpec" -}}
{{- $s := include "encstr-sidecar.settings" . | fromJson -}}
{{- if $s.notify.signal -}}
shareProcessNamespace: true
{{- end -}}
{{- end -}}

{{/* The metrics port, for a Service or PodMonitor (native mode). */}}
{{- define "encstr-sidecar.metricsPort" -}}
{{- $s := include "encstr-sidecar.settings" . | fromJson -}}
{{- $s.metricsPort -}}
{{- end -}}
