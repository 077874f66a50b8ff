{{/* Names ---------------------------------------------------------------------------------- */}}
{{- define "agentic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agentic.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "agentic.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agentic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "agentic.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "agentic.apiName" -}}{{ include "agentic.fullname" . | trunc 59 | trimSuffix "-" }}-api{{- end }}
{{- define "agentic.redisName" -}}{{ include "agentic.fullname" . | trunc 57 | trimSuffix "-" }}-redis{{- end }}
{{/* Worker Deployment of one agent: (dict "root" $ "agent" "retriever") */}}
{{- define "agentic.workerName" -}}{{ include "agentic.fullname" .root | trunc 45 | trimSuffix "-" }}-worker-{{ .agent }}{{- end }}

{{/* Labels (Helm best practice). Selectors use name + instance + component (+ agent). ------ */}}
{{- define "agentic.commonLabels" -}}
helm.sh/chart: {{ include "agentic.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: agentic
{{- end }}

{{- define "agentic.labels" -}}
{{ include "agentic.commonLabels" . }}
app.kubernetes.io/name: {{ include "agentic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* (dict "root" $ "component" "api") or (dict "root" $ "component" "worker" "agent" "writer") */}}
{{- define "agentic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agentic.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .agent }}
agentic.dev/agent: {{ .agent }}
{{- end }}
{{- end }}

{{- define "agentic.componentLabels" -}}
{{ include "agentic.commonLabels" .root }}
{{ include "agentic.selectorLabels" . }}
{{- end }}

{{/* Image ---------------------------------------------------------------------------------- */}}
{{- define "agentic.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Settings read by the chart itself -------------------------------------------------------- */}}
{{/* The key prefix: the same value the pods get as AGENTIC_PREFIX. */}}
{{- define "agentic.prefix" -}}{{ .Values.config.AGENTIC_PREFIX | default "agentic" }}{{- end }}
{{/* app.keys.Keys.agent_stream / agent_group: (dict "root" $ "agent" "retriever") */}}
{{- define "agentic.agentStream" -}}{{ include "agentic.prefix" .root }}:agent:{{ .agent }}{{- end }}
{{- define "agentic.agentGroup" -}}{{ .agent }}{{- end }}

{{- define "agentic.apiPort" -}}{{ index .Values.api.env "AGENTIC_PORT" | default "8000" | int }}{{- end }}
{{- define "agentic.workerPort" -}}{{ index .Values.workers.env "AGENTIC_WORKER_METRICS_PORT" | default "9100" | int }}{{- end }}
{{/* uvicorn's timeout_graceful_shutdown: serve_api(graceful_s=10) in app/api/server.py. */}}
{{- define "agentic.uvicornGracefulSeconds" -}}10{{- end }}

{{/* Fails the render when a pod could be killed before it has drained. */}}
{{- define "agentic.checkTimings" -}}
{{- $drain := index .Values.api.env "AGENTIC_DRAIN_S" | default "2" | float64 }}
{{- $api := add (.Values.api.preStopSleepSeconds | int) (include "agentic.uvicornGracefulSeconds" . | int) | float64 | addf $drain }}
{{- if ge $api (.Values.api.terminationGracePeriodSeconds | float64) }}
{{- fail (printf "api: preStopSleepSeconds (%v) + AGENTIC_DRAIN_S (%v) + uvicorn graceful shutdown (%s s) = %v s must be < terminationGracePeriodSeconds (%v)" .Values.api.preStopSleepSeconds $drain (include "agentic.uvicornGracefulSeconds" .) $api .Values.api.terminationGracePeriodSeconds) }}
{{- end }}
{{- $grace := index .Values.workers.env "AGENTIC_WORKER_GRACE_S" | default "20" | float64 }}
{{- $block := divf (index .Values.workers.env "AGENTIC_BLOCK_MS" | default "1000" | float64) 1000 }}
{{- $worker := addf $grace $block 5 }}
{{- if gt $worker (.Values.workers.terminationGracePeriodSeconds | float64) }}
{{- fail (printf "workers: AGENTIC_WORKER_GRACE_S (%v) + AGENTIC_BLOCK_MS/1000 (%v) + 5 s = %v s must be <= terminationGracePeriodSeconds (%v)" $grace $block $worker .Values.workers.terminationGracePeriodSeconds) }}
{{- end }}
{{- end }}

{{/* Redis ---------------------------------------------------------------------------------- */}}
{{/* Where the URL comes from: internal (in-chart StatefulSet) > existing (Secret) > url. */}}
{{- define "agentic.redisMode" -}}
{{- if .Values.redis.internal.enabled }}internal{{ else if .Values.redis.existingSecret }}existing{{ else }}url{{ end }}
{{- end }}

{{- define "agentic.redisSecretName" -}}
{{- if eq (include "agentic.redisMode" .) "existing" }}{{ .Values.redis.existingSecret }}{{ else }}{{ include "agentic.fullname" . }}-redis{{ end }}
{{- end }}

{{/* host:port of the in-chart Redis as KEDA (in another namespace) and the pods reach it. */}}
{{- define "agentic.redisInternalAddress" -}}
{{ include "agentic.redisName" . }}.{{ .Release.Namespace }}.svc:6379
{{- end }}

{{/* What KEDA's redis-streams triggers need: a dict with address, databaseIndex, enableTLS.
     KEDA runs in its own namespace: a bare service name from the URL is qualified with the
     release namespace, or KEDA would look for it in the wrong one. */}}
{{- define "agentic.kedaRedis" -}}
{{- $r := .Values.redis }}
{{- $mode := include "agentic.redisMode" . }}
{{- $out := dict "address" $r.address "databaseIndex" (default "0" ($r.databaseIndex | toString)) "enableTLS" ($r.tls | toString) }}
{{- if eq $mode "internal" }}
{{- $_ := set $out "address" (include "agentic.redisInternalAddress" .) }}
{{- $_ := set $out "enableTLS" "false" }}
{{- else if eq $mode "url" }}
{{- $u := urlParse $r.url }}
{{- $host := $u.host }}
{{- if not (contains ":" $host) }}{{ $host = printf "%s:6379" $host }}{{ end }}
{{- if not (contains "." (first (splitList ":" $host))) }}
{{- $host = printf "%s.%s.svc:%s" (first (splitList ":" $host)) .Release.Namespace (last (splitList ":" $host)) }}
{{- end }}
{{- $_ := set $out "address" (default $host $r.address) }}
{{- $_ := set $out "databaseIndex" (default (trimPrefix "/" $u.path | default "0") ($r.databaseIndex | toString)) }}
{{- $_ := set $out "enableTLS" (ternary "true" ($r.tls | toString) (eq $u.scheme "rediss")) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{- define "agentic.checkRedis" -}}
{{- $r := .Values.redis }}
{{- $mode := include "agentic.redisMode" . }}
{{- if and (eq $mode "url") (not (regexMatch "^rediss?://[^/]+" ($r.url | default ""))) }}
{{- fail "redis.url must be redis://[user:password@]host[:port][/db] or rediss://... (or set redis.existingSecret, or redis.internal.enabled=true)" }}
{{- end }}
{{- if and .Values.keda.enabled (eq $mode "existing") (not $r.address) }}
{{- fail "redis.address (host:port, reachable from KEDA's namespace) is required with redis.existingSecret when keda.enabled" }}
{{- end }}
{{- end }}

{{/* Pod parts shared by the API and the workers ---------------------------------------------- */}}
{{- define "agentic.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if ne (include "agentic.redisMode" .) "existing" }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{- define "agentic.appEnv" -}}
- name: AGENTIC_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "agentic.redisSecretName" . }}
      key: {{ .Values.redis.urlKey }}
{{- if .Values.llm.existingSecret }}
- name: AGENTIC_OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.llm.existingSecret }}
      key: {{ .Values.llm.apiKeyKey }}
{{- end }}
{{- end }}

{{/* An AGENTIC_* map as container env entries (values always strings). */}}
{{- define "agentic.envList" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end }}

{{- define "agentic.tmpVolumeMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "agentic.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}
