{{- define "mevwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mevwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "mevwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "mevwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "mevwatch.selector" -}}
app.kubernetes.io/name: {{ include "mevwatch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .role }}
{{- with .chain }}
mevwatch.io/chain: {{ . }}
{{- end }}
{{- end -}}

{{/* The ingest/detect sets to run, as a YAML list: one set for the chain of chainId/node when
     `chains` is empty, else one per chain (docs/operations.md, "Several chains"): its name suffix,
     chain label, Kafka group and topic prefix, and the environment that points the shared
     configuration at the chain (chain id, node, topics, group, ClickHouse database). */}}
{{- define "mevwatch.sets" -}}
{{- $root := . -}}
{{- $sets := list -}}
{{- if not .Values.chains -}}
{{- $sets = append $sets (dict "suffix" "" "chain" "" "groupId" .Values.kafka.groupId "topicPrefix" "mevwatch" "env" (list)) -}}
{{- end -}}
{{- range .Values.chains -}}
{{- $prefix := .topicPrefix | default (printf "mevwatch.%s" .name) -}}
{{- $group := printf "%s-%s" $root.Values.kafka.groupId .name -}}
{{- $env := list (dict "name" "MEVWATCH_CHAIN_ID" "value" (printf "%d" (int .chainId)))
                 (dict "name" "MEVWATCH_NODE__RPC" "value" .node.rpc)
                 (dict "name" "MEVWATCH_KAFKA__TOPIC_PREFIX" "value" $prefix)
                 (dict "name" "MEVWATCH_KAFKA__GROUP_ID" "value" $group) -}}
{{- if hasKey .node "confirmations" -}}
{{- $env = append $env (dict "name" "MEVWATCH_NODE__CONFIRMATIONS" "value" (printf "%d" (int .node.confirmations))) -}}
{{- end -}}
{{- if hasKey .node "blockTime" -}}
{{- $env = append $env (dict "name" "MEVWATCH_NODE__BLOCK_TIME_S" "value" (printf "%v" .node.blockTime)) -}}
{{- end -}}
{{- if .nativeWrapper -}}
{{- $env = append $env (dict "name" "MEVWATCH_NATIVE_WRAPPER" "value" .nativeWrapper) -}}
{{- end -}}
{{- if $root.Values.clickhouse.url -}}
{{- $db := .clickhouseDatabase | default (printf "mevwatch_%s" (.name | replace "-" "_")) -}}
{{- /* the server of clickhouse.url (scheme, user, host, port and any query kept) with the chain's database */ -}}
{{- $env = append $env (dict "name" "MEVWATCH_CLICKHOUSE__URL" "value" (regexReplaceAll "^([A-Za-z][A-Za-z0-9+.-]*://[^/?]+)(/[^?]*)?(\\?.*)?$" $root.Values.clickhouse.url (printf "${1}/%s${3}" $db))) -}}
{{- end -}}
{{- $sets = append $sets (dict "suffix" (printf "-%s" .name) "chain" .name "groupId" $group "topicPrefix" $prefix "env" $env) -}}
{{- end -}}
{{- toYaml $sets -}}
{{- end -}}

{{/* repository@digest when image.digest is set, else repository:tag (default: the appVersion) */}}
{{- define "mevwatch.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "mevwatch.secretName" -}}
{{- if .Values.secrets.create -}}{{ include "mevwatch.fullname" . }}{{- else -}}{{ required "secrets.existingSecret is required when secrets.create is false" .Values.secrets.existingSecret }}{{- end -}}
{{- end -}}

{{- define "mevwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "mevwatch.fullname" .) .Values.serviceAccount.name }}{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{/* The ClickHouse password as an environment variable from an optional key: a Secret without
     the key starts the pod without a password instead of failing it. */}}
{{- define "mevwatch.clickhousePasswordEnv" -}}
{{- if .Values.secrets.keys.clickhousePassword }}
- name: MEVWATCH_CLICKHOUSE__PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mevwatch.secretName" . }}
      key: {{ .Values.secrets.keys.clickhousePassword }}
      optional: true
{{- end }}
{{- end -}}

{{/* The Kafka SASL password (ingest and detect), the same way: an optional key. */}}
{{- define "mevwatch.kafkaPasswordEnv" -}}
{{- if and (hasPrefix "SASL_" .Values.kafka.securityProtocol) .Values.secrets.create (not .Values.secrets.kafkaPassword) }}
{{- fail "kafka.securityProtocol SASL_* needs the SASL password: secrets.kafkaPassword (or secrets.create: false with existingSecret holding secrets.keys.kafkaPassword)" }}
{{- end }}
{{- if and (hasPrefix "SASL_" .Values.kafka.securityProtocol) .Values.secrets.keys.kafkaPassword }}
- name: MEVWATCH_KAFKA__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "mevwatch.secretName" . }}
      key: {{ .Values.secrets.keys.kafkaPassword }}
      optional: true
{{- end }}
{{- end -}}

{{/* The TLS material a role reads, as volumes (mode "volumes") or mounts (mode "mounts"): the
     Kafka CA and client certificate for ingest and detect, the ClickHouse CA for detect, attest
     and replay; each from its own Secret, only the keys named. . = dict root role mode */}}
{{- define "mevwatch.tls" -}}
{{- $root := .root -}}
{{- $k := $root.Values.kafka.tls -}}
{{- $c := $root.Values.clickhouse -}}
{{- $items := list -}}
{{- if and (has .role (list "ingest" "detect")) (hasSuffix "SSL" $root.Values.kafka.securityProtocol) -}}
{{- with $k.caSecret }}{{ $items = append $items (dict "name" "kafka-ca" "secret" . "keys" (list $k.caKey)) }}{{ end -}}
{{- with $k.clientSecret }}{{ $items = append $items (dict "name" "kafka-client" "secret" . "keys" (list $k.certKey $k.keyKey)) }}{{ end -}}
{{- end -}}
{{- if and (has .role (list "detect" "attest" "replay")) $c.secure $c.tls.caSecret -}}
{{- $items = append $items (dict "name" "clickhouse-ca" "secret" $c.tls.caSecret "keys" (list $c.tls.caKey)) -}}
{{- end -}}
{{- range $items }}
{{- if eq $.mode "volumes" }}
- name: tls-{{ .name }}
  secret:
    secretName: {{ .secret }}
    defaultMode: 0400
    items:
      {{- range .keys }}
      - {key: {{ . }}, path: {{ . }}}
      {{- end }}
{{- else }}
- {name: tls-{{ .name }}, mountPath: /etc/mevwatch/tls/{{ .name }}, readOnly: true}
{{- end }}
{{- end }}
{{- end -}}

{{/* Pod annotations of every role: checksums of the config and the Secret (a change rolls the
     pods), then podAnnotations and the role's own. . = dict root extra */}}
{{- define "mevwatch.podAnnotations" -}}
{{- $root := .root -}}
checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
{{- if $root.Values.secrets.create }}
checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
{{- else }}
checksum/secret: {{ printf "%s %s" $root.Values.secrets.existingSecret (toJson $root.Values.secrets.keys) | sha256sum }}
{{- end }}
{{- with $root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A probe: the global settings of `kind` merged with the role's. . = dict root role kind path */}}
{{- define "mevwatch.probe" -}}
{{- $p := mergeOverwrite (deepCopy (index .root.Values.probes .kind)) (index (default (dict) .role.probes) .kind | default (dict) | deepCopy) -}}
httpGet: {path: {{ .path }}, port: http}
{{ toYaml (omit $p "enabled") }}
{{- end -}}

{{/* topologySpreadConstraints with the role's pods as the default labelSelector */}}
{{- define "mevwatch.topologySpread" -}}
{{- $out := list -}}
{{- range .constraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" (include "mevwatch.selector" (dict "root" $.root "role" $.role "chain" ($.chain | default "")) | fromYaml)) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The pod spec shared by the long-running roles:
     . = dict root role values(the role's section) args resources env gpu nodeSelector tolerations
             secretItems(list of {key, path}) dataVolume */}}
{{- define "mevwatch.podSpec" -}}
{{- $root := .root -}}
{{- $v := .values -}}
serviceAccountName: {{ include "mevwatch.serviceAccountName" $root }}
automountServiceAccountToken: false
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with (default $root.Values.priorityClassName $v.priorityClassName) }}
priorityClassName: {{ . }}
{{- end }}
securityContext: {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with .nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
topologySpreadConstraints: {{- include "mevwatch.topologySpread" (dict "root" $root "role" $.role "chain" ($.chain | default "") "constraints" .) | nindent 2 }}
{{- end }}
containers:
  - name: mevwatch
    image: {{ include "mevwatch.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args: {{- toYaml .args | nindent 6 }}
    env:
      - name: MEVWATCH_LOG_FORMAT
        value: json
      {{- /* values quoted: an address like 0x4200…0006 must reach the pod as a string, not a YAML number */}}
      {{- range .env }}
      - name: {{ .name }}
        {{- if hasKey . "value" }}
        value: {{ .value | toString | quote }}
        {{- else }}
        valueFrom: {{- toYaml .valueFrom | nindent 10 }}
        {{- end }}
      {{- end }}
      {{- with $root.Values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
      {{- with $v.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    ports:
      - name: http
        containerPort: {{ $root.Values.service.port }}
        protocol: TCP
    {{- $startup := mergeOverwrite (deepCopy $root.Values.probes.startup) (default (dict) (default (dict) $v.probes).startup) }}
    {{- if $startup.enabled }}
    startupProbe: {{- include "mevwatch.probe" (dict "root" $root "role" $v "kind" "startup" "path" "/startupz") | nindent 6 }}
    {{- end }}
    livenessProbe: {{- include "mevwatch.probe" (dict "root" $root "role" $v "kind" "liveness" "path" "/healthz") | nindent 6 }}
    readinessProbe: {{- include "mevwatch.probe" (dict "root" $root "role" $v "kind" "readiness" "path" "/readyz") | nindent 6 }}
    resources:
      {{- $res := deepCopy .resources }}
      {{- if and .gpu .gpu.enabled }}
      {{- $limits := default (dict) $res.limits }}
      {{- $_ := set $limits "nvidia.com/gpu" .gpu.count }}
      {{- if .gpu.memory }}{{ $_ := set $limits "memory" .gpu.memory }}{{ end }}
      {{- $_ := set $res "limits" $limits }}
      {{- end }}
      {{- toYaml $res | nindent 6 }}
    securityContext: {{- toYaml $root.Values.securityContext | nindent 6 }}
    volumeMounts:
      - {name: config, mountPath: /etc/mevwatch/mevwatch.yaml, subPath: mevwatch.yaml, readOnly: true}
      {{- if .secretItems }}
      - {name: secrets, mountPath: /etc/mevwatch/secrets, readOnly: true}
      {{- end }}
      {{- include "mevwatch.tls" (dict "root" $root "role" $.role "mode" "mounts") | nindent 6 }}
      - {name: data, mountPath: /var/lib/mevwatch}
      - {name: tmp, mountPath: /tmp}
      {{- with $root.Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
      {{- with $v.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "mevwatch.fullname" $root }}
  {{- with .secretItems }}
  - name: secrets
    secret:
      secretName: {{ include "mevwatch.secretName" $root }}
      defaultMode: 0400
      items: {{- toYaml . | nindent 8 }}
  {{- end }}
  {{- include "mevwatch.tls" (dict "root" $root "role" $.role "mode" "volumes") | nindent 2 }}
  {{- if .dataVolume }}
  - name: data
    {{- toYaml .dataVolume | nindent 4 }}
  {{- else if not .dataFromClaimTemplate }}
  - name: data
    emptyDir: {}
  {{- end }}
  - name: tmp
    emptyDir: {}
  {{- with $root.Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
  {{- with $v.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* Checks of values the schema cannot express; fails the render with a clear message. */}}
{{- define "mevwatch.validate" -}}
{{- $d := .Values.detect -}}
{{- if and .Values.chains .Values.attest.enabled -}}
{{- fail "chains and attest.enabled: the chart attests one chain per release (the attester reads one chain's database); install a release per attested chain, or set attest.enabled: false" -}}
{{- end -}}
{{- if and .Values.chains .Values.replay.enabled -}}
{{- fail "chains and replay.enabled: a replay Job replays one chain; run it from a release of that chain" -}}
{{- end -}}
{{- $seen := dict -}}
{{- range .Values.chains -}}
{{- $prefix := .topicPrefix | default (printf "mevwatch.%s" .name) -}}
{{- $db := .clickhouseDatabase | default (printf "mevwatch_%s" (.name | replace "-" "_")) -}}
{{- range $what, $v := dict "name" .name "topicPrefix" $prefix "clickhouseDatabase" $db -}}
{{- $k := printf "%s=%s" $what $v -}}
{{- if hasKey $seen $k }}{{ fail (printf "chains: the %s %q is given twice (two chains would share it and mix)" $what $v) }}{{ end -}}
{{- $_ := set $seen $k true -}}
{{- end -}}
{{- end -}}
{{- if and $d.hpa.enabled $d.keda.enabled -}}
{{- fail "detect.hpa.enabled and detect.keda.enabled: choose one autoscaler (KEDA makes its own HPA)" -}}
{{- end -}}
{{- range $name, $a := dict "detect.hpa" $d.hpa "detect.keda" $d.keda -}}
{{- if $a.enabled -}}
{{- if gt (int $a.minReplicas) (int $a.maxReplicas) -}}
{{- fail (printf "%s.minReplicas (%d) is above %s.maxReplicas (%d)" $name (int $a.minReplicas) $name (int $a.maxReplicas)) -}}
{{- end -}}
{{- if gt (int $a.maxReplicas) (int $.Values.kafka.partitions) -}}
{{- fail (printf "%s.maxReplicas (%d) is above kafka.partitions (%d): members beyond the mempool topic's partitions get no partition and only rebalance the group; lower maxReplicas or raise kafka.partitions" $name (int $a.maxReplicas) (int $.Values.kafka.partitions)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range .Values.webhooks -}}
{{- if and $.Values.secrets.create (not (hasKey $.Values.secrets.webhookSecrets .secretKey)) -}}
{{- fail (printf "webhook %s: secretKey %q is not in secrets.webhookSecrets" .url .secretKey) -}}
{{- end -}}
{{- end -}}
{{- end -}}
