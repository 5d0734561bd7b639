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
*/}}

{{- define "encstr-sidecar.settings" -}}
{{- $defaults := dict "image" "ghcr.io/encstr/encstr:0.1.0" "imagePullPolicy" "IfNotPresent" "mode" "native" "keyringSecret" "" "configMap" "" "targetPath" "/run/secrets/app" "sizeLimit" "1Mi" "namePrefix" "" "denyPlaintext" false "metricsPort" 9102 "resources" (dict "requests" (dict "cpu" "5m" "memory" "16Mi") "limits" (dict "memory" "32Mi")) -}}
{{- $s := mergeOverwrite $defaults (deepCopy (default (dict) .)) -}}
{{- if not $s.keyringSecret -}}{{- fail "encstr-sidecar: keyringSecret is required (the Secret a SecretKeyring distributes)" -}}{{- end -}}
{{- if not $s.configMap -}}{{- fail "encstr-sidecar: configMap is required (the config files holding ENCSTR tokens)" -}}{{- end -}}
{{- if not (has $s.mode (list "native" "classic")) -}}{{- fail "encstr-sidecar: mode must be native or classic" -}}{{- end -}}
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

{{/* The metrics port, for a Service or PodMonitor (native mode). */}}
{{- define "encstr-sidecar.metricsPort" -}}
{{- $s := include "encstr-sidecar.settings" . | fromJson -}}
{{- $s.metricsPort -}}
{{- end -}}
