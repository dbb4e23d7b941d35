#!/usr/bin/env bash
# Checks the monitoring and Kubernetes files under deploy/ with the tools
# that read them. The one place these checks live: tests/deploy.rs runs
# each part through this script (so `cargo test` and CI run them too), and
# operators can run it alone after editing a file, without a Rust
# toolchain.
#
#   deploy/check.sh [rules|kubernetes|configs|dashboard]...   (default: all)
#
#   rules       promtool check rules, and promtool test rules (every alert
#               fires once and stays quiet once)
#   kubernetes  kubernetes-validate --strict on every manifest under
#               deploy/kubernetes, for each version in $KUBERNETES_VERSIONS
#               (default "1.29.0 1.33.0"); a manifest whose kind has no
#               schema is an error, not a warning. Then what the schemas
#               cannot say: the hardening every upslot pod needs.
#   configs     `upslot check-config` on the upslot.toml of every ConfigMap
#               (secret files replaced by dummies); the binary is $UPSLOT,
#               else `upslot` on PATH
#   dashboard   python3 -m json.tool on the Grafana dashboard, its shape
#               (datasource and instance variables, unique panel ids), and
#               every PromQL expression through promtool
#
# Needs promtool (Debian: prometheus), kubernetes-validate (PyPI), python3
# with PyYAML (a dependency of kubernetes-validate). A missing tool fails
# the run: nothing is ever skipped.
set -euo pipefail
cd "$(dirname "$0")"

rules=prometheus/upslot-rules.yml
rules_test=prometheus/upslot-rules.test.yml
dashboard=grafana/upslot.json
versions=${KUBERNETES_VERSIONS:-1.29.0 1.33.0}

fail() {
  echo "deploy/check.sh: $*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || fail "$1 is missing ($2)"
}

need_python_yaml() {
  need python3 "Debian: python3"
  python3 -c 'import yaml' 2>/dev/null || fail "python3 cannot import yaml (pip install pyyaml, or Debian: python3-yaml)"
}

manifests() {
  find kubernetes -type f \( -name '*.yaml' -o -name '*.yml' \) | LC_ALL=C sort
}

check_rules() {
  need promtool "Debian: prometheus"
  promtool check rules "$rules"
  promtool test rules "$rules_test"
}

check_kubernetes() {
  need kubernetes-validate "pip install kubernetes-validate"
  need_python_yaml
  local files output version
  mapfile -t files < <(manifests)
  [ ${#files[@]} -gt 0 ] || fail "no manifests under deploy/kubernetes"
  for version in $versions; do
    # kubernetes-validate exits 0 when it has no schema for a kind (it
    # only warns), so its output is read too: every document must pass.
    output=$(kubernetes-validate --strict --kubernetes-version "$version" "${files[@]}" 2>&1) \
      || { echo "$output"; fail "kubernetes-validate failed for Kubernetes $version"; }
    echo "$output"
    OUTPUT=$output python3 - "${files[@]}" <<'PY' || fail "not every manifest passed for Kubernetes $version"
import os, sys, yaml
files = sys.argv[1:]
lines = os.environ["OUTPUT"].splitlines()
bad = [l for l in lines if not l.startswith("INFO ")]
documents = sum(1 for f in files for d in yaml.safe_load_all(open(f)) if d)
passed = sum(1 for l in lines if l.startswith("INFO ") and " passed for resource " in l)
if bad or passed != documents:
    print(f"{documents} documents, {passed} passed; not passed:", *bad, sep="\n  ", file=sys.stderr)
    sys.exit(1)
PY
  done
  python3 - "${files[@]}" <<'PY' || fail "a manifest lacks the hardening upslot pods need"
# What the schemas cannot check: the settings every upslot pod needs.
import sys, yaml

problems = []
def need(cond, where, what):
    if not cond:
        problems.append(f"{where}: {what}")

for path in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        kind, name = doc["kind"], doc["metadata"]["name"]
        where = f"{path} {kind}/{name}"
        if kind == "Service" and not doc["spec"].get("clusterIP") == "None" \
                and doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "admin":
            ports = [p.get("port") for p in doc["spec"].get("ports", [])]
            need(5051 not in ports, where, "the admin port 5051 must not be in a public Service")
        if kind not in ("Deployment", "StatefulSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        need(pod.get("automountServiceAccountToken") is False, where, "automountServiceAccountToken: false")
        need(pod.get("enableServiceLinks") is False, where,
             "enableServiceLinks: false (UPSLOT_* variables are configuration)")
        need(pod.get("terminationGracePeriodSeconds", 30) > 30, where,
             "terminationGracePeriodSeconds above server.shutdown_grace (30 s)")
        psc = pod.get("securityContext", {})
        for key in ("runAsUser", "runAsGroup", "fsGroup"):
            need(psc.get(key) == 10001, where, f"pod securityContext.{key}: 10001")
        need(psc.get("runAsNonRoot") is True, where, "pod securityContext.runAsNonRoot: true")
        need(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", where,
             "pod seccompProfile RuntimeDefault")
        for c in pod["containers"]:
            cw = f"{where} container {c['name']}"
            sc = c.get("securityContext", {})
            need(sc.get("readOnlyRootFilesystem") is True, cw, "readOnlyRootFilesystem: true")
            need(sc.get("allowPrivilegeEscalation") is False, cw, "allowPrivilegeEscalation: false")
            need(sc.get("capabilities", {}).get("drop") == ["ALL"], cw, "capabilities drop ALL")
            need("limits" in c.get("resources", {}) and "requests" in c.get("resources", {}),
                 cw, "resource requests and limits")
            ready = c.get("readinessProbe", {}).get("httpGet", {})
            need(ready.get("path") == "/health", cw, "readinessProbe on GET /health")
            live = c.get("livenessProbe", {}).get("httpGet", {})
            need(live.get("path") == "/live", cw,
                 "livenessProbe on GET /live (/health is 503 while the index is down)")
if problems:
    print(*problems, sep="\n", file=sys.stderr)
    sys.exit(1)
print(f"hardening: {len(sys.argv) - 1} files checked")
PY
}

check_configs() {
  need_python_yaml
  local upslot=${UPSLOT:-$(command -v upslot || true)}
  [ -n "$upslot" ] && [ -x "$upslot" ] \
    || fail "no upslot binary: set UPSLOT=/path/to/upslot (cargo build) or put upslot on PATH"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  mapfile -t files < <(manifests)
  # Writes each ConfigMap's upslot.toml to $work/<n>.toml, with the
  # Secret's files (/run/secrets/upslot/...) replaced by dummy files.
  python3 - "$work" "${files[@]}" <<'PY' >"$work/list"
import os, re, sys, yaml
work, files = sys.argv[1], sys.argv[2:]
secrets = os.path.join(work, "secrets")
os.makedirs(secrets, exist_ok=True)
n = 0
for path in files:
    for doc in yaml.safe_load_all(open(path)):
        if not doc or doc["kind"] != "ConfigMap" or "upslot.toml" not in doc.get("data", {}):
            continue
        text = doc["data"]["upslot.toml"]
        for name in re.findall(r"/run/secrets/upslot/([A-Za-z0-9._-]+)", text):
            with open(os.path.join(secrets, name), "w") as f:
                f.write("0123456789abcdef" * 4 + "\n")
        n += 1
        out = os.path.join(work, f"{n}.toml")
        with open(out, "w") as f:
            f.write(text.replace("/run/secrets/upslot/", secrets + "/"))
        print(f"{path}\t{out}")
PY
  [ -s "$work/list" ] || fail "no ConfigMap with an upslot.toml under deploy/kubernetes"
  local path toml
  while IFS=$'\t' read -r path toml; do
    echo "$path: upslot check-config"
    env -u UPSLOT_CONFIG "$upslot" check-config --config "$toml" \
      || fail "$path: upslot refuses its upslot.toml"
  done <"$work/list"
}

check_dashboard() {
  need promtool "Debian: prometheus"
  need python3 "Debian: python3"
  python3 -m json.tool "$dashboard" >/dev/null || fail "$dashboard is not JSON"
  local work
  work=$(mktemp -d)
  trap 'rm -rf "$work"' RETURN
  # The shape Grafana needs to import it, and every expression as a
  # recording rule for promtool (Grafana's variables replaced).
  python3 - "$dashboard" >"$work/exprs.yml" <<'PY' || fail "$dashboard: see above"
import json, sys
board = json.load(open(sys.argv[1]))
problems = []
if not 36 <= board.get("schemaVersion", 0) <= 41:
    problems.append("schemaVersion should be about 39")
if not board.get("uid") or not board.get("title"):
    problems.append("uid and title are needed")
variables = {v["name"]: v for v in board.get("templating", {}).get("list", [])}
if variables.get("datasource", {}).get("type") != "datasource":
    problems.append("a datasource variable named 'datasource' is needed")
if "instance" not in variables:
    problems.append("an 'instance' variable is needed")
ids, exprs = set(), []
for panel in board.get("panels", []):
    if panel["id"] in ids:
        problems.append(f"panel id {panel['id']} used twice")
    ids.add(panel["id"])
    if "gridPos" not in panel:
        problems.append(f"panel {panel['id']} has no gridPos")
    if panel["type"] == "row":
        continue
    if panel.get("datasource", {}).get("uid") != "${datasource}":
        problems.append(f"panel {panel['title']!r} does not use the datasource variable")
    if not panel.get("targets"):
        problems.append(f"panel {panel['title']!r} has no query")
    for t in panel.get("targets", []):
        exprs.append(t["expr"])
if problems:
    print(*problems, sep="\n", file=sys.stderr)
    sys.exit(1)
print("groups:\n  - name: dashboard\n    rules:")
for i, e in enumerate(exprs):
    e = e.replace("$__rate_interval", "5m").replace("$instance", ".*")
    print(f"      - record: dashboard:expr_{i}\n        expr: {json.dumps(e)}")
PY
  promtool check rules "$work/exprs.yml" || fail "$dashboard: a PromQL expression does not parse"
}

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(rules kubernetes configs dashboard)
for part in "${parts[@]}"; do
  case $part in
    rules) check_rules ;;
    kubernetes) check_kubernetes ;;
    configs) check_configs ;;
    dashboard) check_dashboard ;;
    *) fail "unknown part '$part' (rules, kubernetes, configs, dashboard)" ;;
  esac
done
echo "deploy/check.sh: ${parts[*]}: OK"
