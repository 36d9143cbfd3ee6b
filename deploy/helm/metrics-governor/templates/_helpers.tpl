{{/* The chart name, shortened to fit a DNS label. */}}
{{- define "metrics-governor.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The name of every object of a release. */}}
{{- define "metrics-governor.fullname" -}}
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

{{- define "metrics-governor.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "metrics-governor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "metrics-governor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "metrics-governor.labels" -}}
helm.sh/chart: {{ include "metrics-governor.chart" . }}
{{ include "metrics-governor.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "metrics-governor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "metrics-governor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The ConfigMap with config.yaml and limits.yaml. */}}
{{- define "metrics-governor.configMapName" -}}
{{- include "metrics-governor.fullname" . }}
{{- end }}

{{/* The ConfigMap with the sidecar's script (files/configmap-reload.sh). */}}
{{- define "metrics-governor.reloadScriptName" -}}
{{- printf "%s-reload-script" (include "metrics-governor.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Where the ConfigMap is mounted, as a directory (never subPath), and the files in it. */}}
{{- define "metrics-governor.configDir" -}}/etc/metrics-governor{{- end }}
{{- define "metrics-governor.configPath" -}}{{ include "metrics-governor.configDir" . }}/config.yaml{{- end }}
{{- define "metrics-governor.limitsPath" -}}{{ include "metrics-governor.configDir" . }}/limits.yaml{{- end }}
{{- define "metrics-governor.stateDir" -}}/var/lib/metrics-governor{{- end }}

{{/* The files the sidecar watches, space-separated (WATCH_FILES of configmap-reload.sh). */}}
{{- define "metrics-governor.watchFiles" -}}
{{- $files := list (include "metrics-governor.configPath" .) }}
{{- if .Values.limits.enabled }}
{{- $files = prepend $files (include "metrics-governor.limitsPath" .) }}
{{- end }}
{{- join " " $files }}
{{- end }}

{{/*
checksum/config: a hash of the settings in config.yaml that need a restart: `memory` (the heap is
sized at start). Everything else in config.yaml, and limits.yaml, reloads in place and is left
out, so changing it never rolls the pods.
*/}}
{{- define "metrics-governor.restartChecksum" -}}
{{- $config := fromYaml .Values.config }}
{{- if hasKey $config "Error" }}
{{- fail (printf "config is not valid YAML: %s" (get $config "Error")) }}
{{- end }}
{{- $restart := dict "memory" $config.memory }}
{{- $restart | toYaml | sha256sum }}
{{- end }}

{{/*
-reload-watch: reload.watch when set; when empty (null), true without the sidecar and false with
it, so that a ConfigMap change causes one reload, not two.
*/}}
{{- define "metrics-governor.reloadWatch" -}}
{{- if kindIs "invalid" .Values.reload.watch }}
{{- not .Values.configReload.enabled }}
{{- else }}
{{- .Values.reload.watch | toString | eq "true" }}
{{- end }}
{{- end }}

{{/* The headless Service of mode: governor, which routers resolve to the governors' pod IPs. */}}
{{- define "metrics-governor.headlessServiceName" -}}
{{- printf "%s-headless" (include "metrics-governor.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{/*
The exporters.<protocol>.sharding blocks of config.yaml, as YAML {otlp: ..., prw: ...} (a protocol
without sharding is left out): exporters.<protocol>.sharding when set; otherwise, in mode: router
with router.governors.service set, a dns block for the governors' headless Service.
*/}}
{{- define "metrics-governor.sharding" -}}
{{- $out := dict -}}
{{- $g := .Values.router.governors -}}
{{- $paths := dict "otlp" "/v1/metrics" "prw" "/api/v1/write" -}}
{{- $ports := dict "otlp" $g.ports.otlpHttp "prw" $g.ports.prw -}}
{{- range $p := list "otlp" "prw" -}}
{{- $given := (get $.Values.exporters $p).sharding | default dict -}}
{{- if $given -}}
{{- $_ := set $out $p $given -}}
{{- else if and (eq $.Values.mode "router") $g.service -}}
{{- $host := printf "%s.%s.svc.cluster.local" $g.service ($g.namespace | default $.Release.Namespace) -}}
{{- $dns := dict "name" $host "port" (int (get $ports $p)) "scheme" $g.scheme "path" (get $paths $p) "refresh_interval" $g.refreshInterval -}}
{{- $s := dict "dns" $dns "key" $g.key "virtual_nodes" (int $g.virtualNodes) -}}
{{- if eq $g.key "labels" -}}
{{- $_ := set $s "labels" $g.labels -}}
{{- end -}}
{{- $_ := set $out $p $s -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* Combinations of mode, router.* and exporters.* that cannot work: refused at render time. */}}
{{- define "metrics-governor.checkMode" -}}
{{- $sharding := include "metrics-governor.sharding" . | fromYaml -}}
{{- $config := fromYaml .Values.config | default dict -}}
{{- $exporters := get $config "exporters" | default dict -}}
{{- if and (eq .Values.mode "router") (not $sharding) -}}
{{- fail "mode: router needs router.governors.service (the headless Service of a release with mode: governor) or exporters.otlp.sharding / exporters.prw.sharding" -}}
{{- end -}}
{{- if and (eq .Values.mode "router") (eq .Values.router.governors.key "labels") (not .Values.router.governors.labels) -}}
{{- fail "router.governors.key: labels needs router.governors.labels" -}}
{{- end -}}
{{- range $p, $s := $sharding -}}
{{- if (get $.Values.exporters $p).endpoint -}}
{{- fail (printf "exporters.%s.endpoint cannot be combined with sharding (mode: %s): leave it empty" $p $.Values.mode) -}}
{{- end -}}
{{- if (get $exporters $p | default dict).endpoint -}}
{{- fail (printf "exporters.%s.endpoint in config cannot be combined with sharding (mode: %s): remove it" $p $.Values.mode) -}}
{{- end -}}
{{- if and (has (toString $s.key) (list "rule" "rule_group")) (not $.Values.limits.enabled) -}}
{{- fail (printf "exporters.%s sharding with key: %s needs limits.enabled (the rules come from limits.yaml)" $p (toString $s.key)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The governor's command line. */}}
{{- define "metrics-governor.args" -}}
- {{ printf "-config=%s" (include "metrics-governor.configPath" .) | quote }}
{{- if .Values.limits.enabled }}
- {{ printf "-limits-config=%s" (include "metrics-governor.limitsPath" .) | quote }}
{{- end }}
{{- if eq .Values.mode "router" }}
- "-mode=router"
{{- end }}
- {{ printf "-stats-addr=:%v" .Values.ports.stats | quote }}
- {{ printf "-http-listen=:%v" .Values.ports.otlpHttp | quote }}
- {{ printf "-grpc-listen=:%v" .Values.ports.otlpGrpc | quote }}
- {{ printf "-prw-listen=:%v" .Values.ports.prw | quote }}
{{- with .Values.exporters.otlp.endpoint }}
- {{ printf "-exporter-endpoint=%s" . | quote }}
{{- end }}
{{- with .Values.exporters.prw.endpoint }}
- {{ printf "-prw-exporter-endpoint=%s" . | quote }}
{{- end }}
- {{ printf "-reload-watch=%t" (include "metrics-governor.reloadWatch" . | eq "true") | quote }}
- {{ printf "-reload-poll-interval=%s" .Values.reload.pollInterval | quote }}
- {{ printf "-reload-debounce=%s" .Values.reload.debounce | quote }}
{{- if .Values.reload.http }}
- "-reload-http"
{{- end }}
{{- if .Values.reload.eventLog.enabled }}
- {{ printf "-reload-event-log=%s/reload-events.jsonl" (include "metrics-governor.stateDir" .) | quote }}
{{- end }}
- {{ printf "-log-level=%s" .Values.logLevel | quote }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{/*
config.yaml as mounted: .Values.config, with exporters.<protocol>.sharding from
metrics-governor.sharding, exporters.queue when queue.enabled, and receivers.tls and receivers.auth
pointing at the mounted Secrets when tls.secretName or auth.secretName is set (then rendered from
its parsed form).
*/}}
{{- define "metrics-governor.config" -}}
{{- $sharding := include "metrics-governor.sharding" . | fromYaml -}}
{{- if or .Values.tls.secretName .Values.auth.secretName .Values.queue.enabled $sharding -}}
{{- $cfg := fromYaml .Values.config | default dict -}}
{{- if $sharding -}}
{{- $exporters := get $cfg "exporters" | default dict -}}
{{- range $p, $s := $sharding -}}
{{- $e := get $exporters $p | default dict -}}
{{- $_ := set $e "sharding" $s -}}
{{- $_ := set $exporters $p $e -}}
{{- end -}}
{{- $_ := set $cfg "exporters" $exporters -}}
{{- end -}}
{{- if .Values.queue.enabled -}}
{{- $exporters := get $cfg "exporters" | default dict -}}
{{- $_ := set $exporters "queue" (dict "path" .Values.queue.mountPath "max_bytes" (int64 .Values.queue.maxBytes) "sync_interval" .Values.queue.syncInterval "full_behavior" .Values.queue.fullBehavior) -}}
{{- $_ := set $cfg "exporters" $exporters -}}
{{- end -}}
{{- $receivers := get $cfg "receivers" | default dict -}}
{{- if .Values.tls.secretName -}}
{{- $tls := dict "cert_file" (printf "%s/tls.crt" .Values.tls.mountPath) "key_file" (printf "%s/tls.key" .Values.tls.mountPath) -}}
{{- if .Values.tls.clientCA -}}
{{- $_ := set $tls "client_ca_file" (printf "%s/ca.crt" .Values.tls.mountPath) -}}
{{- end -}}
{{- $_ := set $receivers "tls" $tls -}}
{{- end -}}
{{- if .Values.auth.secretName -}}
{{- $auth := dict -}}
{{- if .Values.auth.bearerToken -}}
{{- $_ := set $auth "bearer_token_file" (printf "%s/token" .Values.auth.mountPath) -}}
{{- end -}}
{{- if .Values.auth.basicUsername -}}
{{- $_ := set $auth "basic_username" .Values.auth.basicUsername -}}
{{- $_ := set $auth "basic_password_file" (printf "%s/password" .Values.auth.mountPath) -}}
{{- end -}}
{{- $_ := set $receivers "auth" $auth -}}
{{- end -}}
{{- if gt (len $receivers) 0 -}}
{{- $_ := set $cfg "receivers" $receivers -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- else -}}
{{- .Values.config -}}
{{- end -}}
{{- end -}}
