{{/*
Chart name, truncated to 63 chars (DNS label limit).
*/}}
{{- define "geoslide.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 chars. If the release name already contains the
chart name it is not repeated.
*/}}
{{- define "geoslide.fullname" -}}
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

{{/*
Name of one component's objects: "<fullname>-<suffix>", kept within 63 chars by shortening
the fullname part, so the suffix (which tells components apart) survives.
Usage: include "geoslide.componentName" (list . "scheduler")
*/}}
{{- define "geoslide.componentName" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $max := sub 62 (len $suffix) | int }}
{{- printf "%s-%s" (include "geoslide.fullname" $root | trunc $max | trimSuffix "-") $suffix }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "geoslide.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels. Usage: include "geoslide.selectorLabels" (list . "scheduler")
*/}}
{{- define "geoslide.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "geoslide.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/*
Common labels. Usage: include "geoslide.labels" (list . "scheduler")
*/}}
{{- define "geoslide.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "geoslide.chart" $root }}
{{ include "geoslide.selectorLabels" . }}
app.kubernetes.io/version: {{ $root.Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
app.kubernetes.io/part-of: {{ include "geoslide.name" $root }}
{{- end }}

{{/*
Labels selecting every pod of this release (used by the NetworkPolicy).
*/}}
{{- define "geoslide.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "geoslide.name" . }}
app.kubernetes.io/instance: {{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "geoslide.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "geoslide.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference, pinned by digest: REPOSITORY:TAG@DIGEST. GPU workers may override repository,
tag and digest; an overridden repository or tag needs its own digest (it is another image).
Without a digest the chart refuses to render unless image.allowUnpinned is true.
Usage: include "geoslide.image" (list . .Values.workers.gpu.image) or (list . dict)
*/}}
{{- define "geoslide.image" -}}
{{- $root := index . 0 }}
{{- $override := index . 1 }}
{{- $repo := default $root.Values.image.repository $override.repository }}
{{- $tag := default (default $root.Chart.AppVersion $root.Values.image.tag) $override.tag }}
{{- $own := or $override.repository $override.tag }}
{{- $digest := ternary (default "" $override.digest) (default $root.Values.image.digest $override.digest) (not (empty $own)) }}
{{- if $digest }}
{{- printf "%s:%s@%s" $repo (toString $tag) $digest }}
{{- else if $root.Values.image.allowUnpinned }}
{{- printf "%s:%s" $repo (toString $tag) }}
{{- else }}
{{- fail (printf "image %s:%s has no digest: set %s to the sha256 digest `docker push` printed (or image.allowUnpinned=true for a local test cluster)" $repo (toString $tag) (ternary "workers.gpu.image.digest" "image.digest" (not (empty $own)))) }}
{{- end }}
{{- end }}

{{/*
Scheduler Service name and address.
*/}}
{{- define "geoslide.schedulerServiceName" -}}
{{- include "geoslide.componentName" (list . "scheduler") }}
{{- end }}

{{- define "geoslide.schedulerAddress" -}}
{{- printf "tcp://%s:%d" (include "geoslide.schedulerServiceName" .) (int .Values.scheduler.port) }}
{{- end }}

{{/*
Pod-level fields shared by every pod: service account, pull secrets, security context.
*/}}
{{- define "geoslide.podCommon" -}}
serviceAccountName: {{ include "geoslide.serviceAccountName" . }}
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}

{{/*
Container security context.
*/}}
{{- define "geoslide.containerSecurityContext" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end }}

{{/*
Environment shared by every geoslide container: writable HOME/caches under /tmp (the root
filesystem is read-only), then the global extra env.
*/}}
{{- define "geoslide.baseEnv" -}}
- name: HOME
  value: /tmp
- name: XDG_CACHE_HOME
  value: /tmp/.cache
- name: MPLCONFIGDIR
  value: /tmp/.cache/matplotlib
- name: PYTHONUNBUFFERED
  value: "1"
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Object-store environment: credentials only via secretKeyRef to objectStore.existingSecret;
endpoint and region may be plain values.
*/}}
{{- define "geoslide.objectStoreEnv" -}}
{{- $os := .Values.objectStore }}
{{- $keys := $os.secretKeys }}
{{- if $os.existingSecret }}
{{- range $var, $key := dict "AWS_ACCESS_KEY_ID" $keys.accessKeyId "AWS_SECRET_ACCESS_KEY" $keys.secretAccessKey "AWS_SESSION_TOKEN" $keys.sessionToken "AWS_ENDPOINT_URL" $keys.endpointUrl }}
{{- if $key }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $os.existingSecret | quote }}
      key: {{ $key | quote }}
      optional: {{ $os.optional }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $os.endpoint (not (and $os.existingSecret $keys.endpointUrl)) }}
- name: AWS_ENDPOINT_URL
  value: {{ $os.endpoint | quote }}
{{- end }}
{{- with $os.region }}
- name: AWS_REGION
  value: {{ . | quote }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
The /tmp emptyDir volume and its mount.
*/}}
{{- define "geoslide.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmp.sizeLimit }}
{{- end }}

{{- define "geoslide.tmpMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
The shared volume (sharedVolume.existingClaim) and its mount, at the same path in the Jobs and the
workers; both empty without a claim. The mount path must not hide the chart's own mounts.
*/}}
{{- define "geoslide.sharedVolume" -}}
{{- with .Values.sharedVolume.existingClaim }}
- name: shared
  persistentVolumeClaim:
    claimName: {{ . | quote }}
{{- end }}
{{- end }}

{{- define "geoslide.sharedMount" -}}
{{- $sv := .Values.sharedVolume }}
{{- if $sv.existingClaim }}
- name: shared
  mountPath: {{ include "geoslide.sharedPath" . | quote }}
  {{- with $sv.subPath }}
  subPath: {{ . | quote }}
  {{- end }}
{{- end }}
{{- end }}

{{- define "geoslide.sharedPath" -}}
{{- $mount := trimSuffix "/" .Values.sharedVolume.mountPath }}
{{- range list "/tmp" "/scratch" "/dev/shm" "/etc/geoslide" }}
{{- if or (eq $mount .) (hasPrefix (printf "%s/" .) $mount) (hasPrefix (printf "%s/" $mount) .) }}
{{- fail (printf "sharedVolume.mountPath %q would hide or sit in the chart's own mount %s; use e.g. /shared" $mount .) }}
{{- end }}
{{- end }}
{{- $mount }}
{{- end }}

{{/*
Fail unless a Job's path is one the workers can reach: a URL (s3://..., unless the 4th item is
false), or a path under sharedVolume.mountPath with sharedVolume.existingClaim set. Each Job's
/tmp is its own, and the workers run in other pods.
Usage: include "geoslide.checkShared" (list . "mapJob.out" $m.out true)
*/}}
{{- define "geoslide.checkShared" -}}
{{- $root := index . 0 }}
{{- $key := index . 1 }}
{{- $path := toString (index . 2) }}
{{- $urls := index . 3 }}
{{- $mount := include "geoslide.sharedPath" $root }}
{{- $or := ternary ", or use an object-store URL (s3://...)" "" $urls }}
{{- if and $path (not (and $urls (contains "://" $path))) }}
{{- if not $root.Values.sharedVolume.existingClaim }}
{{- fail (printf "%s is the local path %q, which the workers cannot see: set sharedVolume.existingClaim (a ReadWriteMany PVC mounted at %s in the Jobs and the workers) and put it under %s/%s" $key $path $mount $mount $or) }}
{{- else if not (hasPrefix (printf "%s/" $mount) $path) }}
{{- fail (printf "%s is %q, outside the shared volume: put it under %s/ (sharedVolume.mountPath)%s" $key $path $mount $or) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Init container that waits for the scheduler's TCP port (uses the geoslide image's Python).
*/}}
{{- define "geoslide.waitForScheduler" -}}
{{- if .Values.jobs.waitForScheduler -}}
initContainers:
  - name: wait-for-scheduler
    image: {{ include "geoslide.image" (list . dict) | quote }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    command:
      - python
      - -c
      - |
        import socket, sys, time
        host, port, deadline = sys.argv[1], int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
        while True:
            try:
                socket.create_connection((host, port), timeout=5).close()
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    sys.exit(f"scheduler {host}:{port} unreachable: {exc}")
                time.sleep(2)
      - {{ include "geoslide.schedulerServiceName" . | quote }}
      - {{ .Values.scheduler.port | quote }}
      - {{ .Values.jobs.waitForSchedulerTimeout | quote }}
    {{- include "geoslide.containerSecurityContext" . | nindent 4 }}
    resources:
      {{- toYaml .Values.jobs.initResources | nindent 6 }}
    volumeMounts:
      {{- include "geoslide.tmpMount" . | nindent 6 }}
{{- end }}
{{- end }}

{{/*
Scanner note on workloads that get object-store credentials as environment variables (checkov
CKV_K8S_35 prefers files): GDAL's /vsis3/ and s3fs read AWS_* variables, not a mounted file, in
every worker. Workload identity (objectStore.existingSecret empty) avoids the Secret altogether.
*/}}
{{- define "geoslide.secretEnvAnnotations" -}}
{{- if .Values.objectStore.existingSecret }}
annotations:
  checkov.io/skip1: "CKV_K8S_35=GDAL /vsis3/ and s3fs read AWS_* credentials from the environment; see helm/README.md"
{{- end }}
{{- end }}
