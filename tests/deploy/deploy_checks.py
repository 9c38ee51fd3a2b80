#!/usr/bin/env python3
"""Static checks of the deploy kit (deploy/), one subcommand per ctest test.

    deploy_checks.py kubernetes REPO [--sluice BIN] [--kubectl BIN]
    deploy_checks.py grafana    REPO --promtool BIN
    deploy_checks.py systemd    REPO [--sluice BIN] [--systemd-analyze BIN]
    deploy_checks.py docker     REPO --sluice BIN
    deploy_checks.py configmap-key REPO KEY      (prints one key of the sluice ConfigMap)

No cluster, Docker engine or systemd is needed: these read the files and cross-check
them against each other and against the sluice binary (`--check`, `ldd`). Each check
states the operational reason it exists. Needs python3 and python3-yaml.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


def finish(name):
    if failures:
        for f in failures:
            print(f"FAIL {name}: {f}", file=sys.stderr)
        sys.exit(1)
    print(f"{name}: OK")


# ---- units -----------------------------------------------------------------------------

_SIZE = {"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
         "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_QUANTITY = {"": 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
             "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_DURATION = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def sluice_size(text):
    """sluice's sizes: 512, 64KiB, 1GiB, 1GB (powers of 1000)."""
    m = re.fullmatch(r"(\d+)\s*([KMGT]i?B|B)?", str(text).strip())
    if not m:
        raise ValueError(f"not a sluice size: {text!r}")
    return int(m.group(1)) * _SIZE[m.group(2) or ""]


def k8s_quantity(text):
    m = re.fullmatch(r"(\d+)([KMGT]i|[kMGT])?", str(text).strip())
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    return int(m.group(1)) * _QUANTITY[m.group(2) or ""]


def sluice_duration(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", str(text).strip())
    if not m:
        raise ValueError(f"not a sluice duration: {text!r}")
    return int(m.group(1)) * _DURATION[m.group(2)]


def systemd_seconds(text):
    """systemd time spans as used here: 45, 45s, 1min, 1min 30s, 500ms."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    text = text.strip()
    if re.fullmatch(r"\d+", text):
        return int(text)
    total = 0
    for n, unit in re.findall(r"(\d+)\s*([a-z]+)", text):
        total += int(n) * units[unit]
    return total


def port_of(listen):
    return int(str(listen).rsplit(":", 1)[1])


def env_refs(config_text):
    """Names used as ${NAME} or ${NAME:?x} in the config's values (sluice expands values
    only, not comments): the ones without a default, which must be set."""
    def scalars(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from scalars(v)
        elif isinstance(node, list):
            for v in node:
                yield from scalars(v)
        elif isinstance(node, str):
            yield node
    required = set()
    for value in scalars(yaml.safe_load(config_text)):
        for name, op in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:[-?])?", value.replace("$$", "")):
            if op != ":-":
                required.add(name)
    return required


def sluice_check(sluice, config_text, env, what):
    """Run `sluice --config FILE --check` on a config text with the given environment."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "sluice.yaml")
        with open(path, "w") as f:
            f.write(config_text)
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        full_env.update(env)
        r = subprocess.run([sluice, "--config", path, "--check"], env=full_env,
                           capture_output=True, text=True)
        check(r.returncode == 0,
              f"{what}: sluice --check exit {r.returncode}: {r.stdout}{r.stderr}".strip())


# ---- kubernetes ------------------------------------------------------------------------

def load_k8s(repo):
    kdir = os.path.join(repo, "deploy", "kubernetes")
    with open(os.path.join(kdir, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    docs = []
    for res in kust["resources"]:
        path = os.path.join(kdir, res)
        check(os.path.isfile(path), f"kustomization.yaml lists {res}, which does not exist")
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc:
                    docs.append(doc)
    listed = set(kust["resources"])
    for name in os.listdir(kdir):
        if name.endswith(".yaml") and name != "kustomization.yaml":
            check(name in listed, f"{name} is not listed in kustomization.yaml resources")
    return docs


def one(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    check(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0] if found else {}


def configmap_data(repo):
    docs = load_k8s(repo)
    return one(docs, "ConfigMap").get("data", {})


def container_env(container):
    """Literal env values; secretKeyRef and other sources get a placeholder."""
    env = {}
    for e in container.get("env", []):
        env[e["name"]] = str(e["value"]) if "value" in e else "from-" + next(iter(e["valueFrom"]))
    return env


def check_secure(c, pod_sc, what):
    sc = c.get("securityContext", {})
    check(sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, f"{what}: runAsNonRoot")
    check(sc.get("readOnlyRootFilesystem") is True, f"{what}: readOnlyRootFilesystem: true")
    check(sc.get("allowPrivilegeEscalation") is False, f"{what}: allowPrivilegeEscalation: false")
    check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{what}: capabilities.drop [ALL]")
    check(not sc.get("privileged", False), f"{what}: not privileged")


def cmd_kubernetes(args):
    repo = args.repo
    docs = load_k8s(repo)
    for d in docs:
        check({"apiVersion", "kind", "metadata"} <= set(d), f"{d.get('kind')}: apiVersion/kind/metadata")
    cm, dep, svc = one(docs, "ConfigMap"), one(docs, "Deployment"), one(docs, "Service")
    pdb = one(docs, "PodDisruptionBudget")
    config_text = cm["data"]["sluice.yaml"]
    config = yaml.safe_load(config_text)

    tmpl = dep["spec"]["template"]
    pod = tmpl["spec"]
    labels = tmpl["metadata"]["labels"]
    sel = dep["spec"]["selector"]["matchLabels"]
    check(all(labels.get(k) == v for k, v in sel.items()), "Deployment selector matches the pod labels")
    check(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
          "Service selector matches the pod labels")
    check(all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items()),
          "PodDisruptionBudget selector matches the pod labels")

    # Native sidecar: an init container that keeps running (restartPolicy: Always).
    inits = {c["name"]: c for c in pod.get("initContainers", [])}
    mains = {c["name"]: c for c in pod.get("containers", [])}
    sluice = inits.get("sluice")
    if not check(sluice is not None, "initContainers has a container named sluice"):
        finish("kubernetes")
    check(sluice.get("restartPolicy") == "Always",
          "sluice is a native sidecar: initContainers entry with restartPolicy: Always")
    check(len(mains) >= 1, "at least one main container (the app)")

    # Ports: the config's listeners are the container's named ports.
    ports = {p["name"]: p["containerPort"] for p in sluice.get("ports", [])}
    check(str(config["listen"]).startswith("0.0.0.0:"), "listen on 0.0.0.0 (the Service reaches the pod IP)")
    check(str(config["admin"]["listen"]).startswith("0.0.0.0:"),
          "admin.listen on 0.0.0.0 (kubelet probes and Prometheus reach the pod IP)")
    check(ports.get("http") == port_of(config["listen"]), "port http == listen port")
    check(ports.get("admin") == port_of(config["admin"]["listen"]), "port admin == admin.listen port")

    # Probes on the admin port: /livez for startup and liveness, /readyz for readiness.
    def probe(name, path):
        p = sluice.get(name)
        if not check(p is not None, f"sluice has a {name}"):
            return
        get = p.get("httpGet", {})
        check(get.get("path") == path, f"{name} path {path}")
        check(get.get("port") in ("admin", ports.get("admin")), f"{name} on the admin port")
    probe("startupProbe", "/livez")
    probe("livenessProbe", "/livez")
    probe("readinessProbe", "/readyz")

    # Resources and hardening.
    for name, c in list(inits.items()) + list(mains.items()):
        res = c.get("resources", {})
        check("memory" in res.get("requests", {}) and "cpu" in res.get("requests", {}),
              f"{name}: cpu and memory requests")
        check("memory" in res.get("limits", {}), f"{name}: memory limit")
        check_secure(c, pod.get("securityContext", {}), name)
    check("cpu" in sluice["resources"].get("limits", {}), "sluice: cpu limit")
    pod_sc = pod.get("securityContext", {})
    with open(os.path.join(repo, "deploy", "docker", "Dockerfile")) as f:
        m = re.search(r"^USER (\d+):(\d+)", f.read(), re.M)
    if check(m is not None, "Dockerfile has a numeric USER uid:gid"):
        check(pod_sc.get("runAsUser") == int(m.group(1)) and pod_sc.get("runAsGroup") == int(m.group(2)),
              "pod runAsUser/runAsGroup match the image's USER (runAsNonRoot needs a numeric uid)")

    # The buffer volume: mounted at buffer.dir, an emptyDir bigger than max_bytes.
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in sluice.get("volumeMounts", [])}
    bdir = config["buffer"]["dir"]
    vname = mounts.get(bdir)
    if check(vname is not None, f"sluice mounts a volume at buffer.dir {bdir}"):
        vol = volumes.get(vname, {})
        if check("emptyDir" in vol, f"volume {vname} is an emptyDir"):
            limit = vol["emptyDir"].get("sizeLimit")
            max_bytes = sluice_size(config["buffer"].get("max_bytes", "1GiB"))
            check(limit is not None and k8s_quantity(limit) > max_bytes,
                  f"emptyDir sizeLimit {limit} > buffer.max_bytes {config['buffer'].get('max_bytes')}")
            eph = sluice["resources"].get("requests", {}).get("ephemeral-storage")
            check(eph is not None and k8s_quantity(eph) >= k8s_quantity(limit),
                  "sluice requests ephemeral-storage covering the emptyDir sizeLimit")
            check(vol["emptyDir"].get("medium") != "Memory", "buffer emptyDir is on disk, not tmpfs")

    # The config file lands where the image's ENTRYPOINT reads it.
    cname = mounts.get("/etc/sluice")
    if check(cname is not None, "sluice mounts its config at /etc/sluice (the image's --config dir)"):
        cm_vol = volumes.get(cname, {}).get("configMap", {})
        check(cm_vol.get("name") == cm["metadata"]["name"], "config volume is the sluice ConfigMap")
        items = [i["path"] for i in cm_vol.get("items", [])] or list(cm["data"])
        check("sluice.yaml" in items, "config volume provides sluice.yaml")

    # ${VAR}s the config requires are set in the sluice container.
    env = container_env(sluice)
    for name in env_refs(config_text):
        check(name in env, f"config uses ${{{name}}} but the sluice container does not set it")

    # The target is the app container, over loopback, on the app's port.
    app_ports = {p["containerPort"] for c in mains.values() for p in c.get("ports", [])}
    for tname, t in config["targets"].items():
        url = re.sub(r"\$\{([A-Za-z_0-9]+)[^}]*\}", lambda mm: env.get(mm.group(1), "?"), str(t["url"]))
        m = re.match(r"http://127\.0\.0\.1:(\d+)", url)
        if check(m is not None, f"target {tname} is on 127.0.0.1:PORT (got {url})"):
            check(int(m.group(1)) in app_ports, f"target {tname} port {m.group(1)} is an app container port")

    # Shutdown ordering: the app's preStop waits for the drain, and the grace period
    # covers that wait plus sluice's own shutdown_timeout.
    shutdown = sluice_duration(config.get("shutdown_timeout", "20s"))
    grace = pod.get("terminationGracePeriodSeconds", 30)
    for name, c in mains.items():
        pre = c.get("lifecycle", {}).get("preStop")
        if not check(pre is not None, f"{name}: has a preStop hook (wait for sluice to drain)"):
            continue
        drain = 0
        if "exec" in pre:
            cmd = " ".join(pre["exec"]["command"])
            drain = int(container_env(c).get("SLUICE_DRAIN_TIMEOUT", "60"))
            script = re.search(r"(/\S+/wait-for-drain\.sh)", cmd)
            if check(script is not None, f"{name}: preStop runs wait-for-drain.sh"):
                d = os.path.dirname(script.group(1))
                mounted = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
                vol = volumes.get(mounted.get(d, ""), {}).get("configMap", {})
                check(vol.get("name") == cm["metadata"]["name"] and
                      any(i["key"] == "wait-for-drain.sh" for i in vol.get("items", [])),
                      f"{name}: {d} is the ConfigMap's wait-for-drain.sh")
        elif "sleep" in pre:
            drain = int(pre["sleep"]["seconds"])
        check(grace > drain + shutdown,
              f"terminationGracePeriodSeconds {grace} > preStop drain {drain}s + shutdown_timeout {shutdown}s")
    check(grace > shutdown, "terminationGracePeriodSeconds > shutdown_timeout")

    # Service: the ingest port only.
    svc_ports = svc["spec"]["ports"]
    check(len(svc_ports) == 1 and svc_ports[0].get("targetPort") in ("http", ports.get("http")),
          "Service exposes the ingest port (only)")

    # Prometheus annotations point at the admin port.
    ann = tmpl["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true", "pod annotation prometheus.io/scrape: \"true\"")
    check(ann.get("prometheus.io/port") == str(ports.get("admin")), "prometheus.io/port is the admin port")
    check(ann.get("prometheus.io/path") == "/metrics", "prometheus.io/path: /metrics")

    # The config itself is valid for sluice, with the container's environment.
    if args.sluice:
        sluice_check(args.sluice, config_text, env, "ConfigMap sluice.yaml")

    # kustomize build, where kubectl is installed (it is not a Debian package).
    if args.kubectl and shutil.which(args.kubectl):
        r = subprocess.run([args.kubectl, "kustomize", os.path.join(repo, "deploy", "kubernetes")],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"kubectl kustomize: {r.stderr.strip()}")
    else:
        print("kubernetes: kubectl not installed, kustomize build not checked")
    finish("kubernetes")


def cmd_configmap_key(args):
    sys.stdout.write(configmap_data(args.repo)[args.key])


# ---- grafana ---------------------------------------------------------------------------

# Every metric the dashboard is meant to show (the panel list).
DASHBOARD_METRICS = [
    "sluice_http_requests_total", "sluice_http_request_duration_seconds_bucket",
    "sluice_queue_messages", "sluice_queue_oldest_message_age_seconds",
    "sluice_messages_delivered_total", "sluice_delivery_duration_seconds_bucket",
    "sluice_message_latency_seconds_bucket", "sluice_delivery_attempts_total",
    "sluice_delivery_retries_total", "sluice_messages_dead_lettered_total", "sluice_dead_letters",
    "sluice_delivery_in_flight", "sluice_target_concurrency_limit",
    "sluice_target_rate_limit_per_second", "sluice_target_paused", "sluice_buffer_bytes",
    "sluice_buffer_max_bytes", "sluice_buffer_segments", "sluice_buffer_fsync_duration_seconds_bucket",
    "sluice_buffer_batch_records_bucket", "sluice_config_last_reload_successful",
    "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
]


def cmd_grafana(args):
    path = os.path.join(args.repo, "deploy", "grafana", "sluice-dashboard.json")
    with open(path) as f:
        dash = json.load(f)
    check(dash.get("uid") and dash.get("title"), "dashboard has uid and title")
    check(36 <= dash.get("schemaVersion", 0) <= 41, f"schemaVersion {dash.get('schemaVersion')} is 36..41")
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    ds = variables.get("datasource", {})
    check(ds.get("type") == "datasource" and ds.get("query") == "prometheus",
          "template variable datasource of type datasource, query prometheus")
    tgt = variables.get("target", {})
    tq = tgt.get("query")
    tq = tq.get("query") if isinstance(tq, dict) else tq
    check(tq == "label_values(sluice_queue_messages, target)",
          "template variable target = label_values(sluice_queue_messages, target)")

    panels, exprs = [], []
    for p in dash["panels"]:
        panels.append(p)
        panels.extend(p.get("panels", []))
    ids = [p["id"] for p in panels]
    check(len(ids) == len(set(ids)), "panel ids are unique")
    cells = set()
    for p in panels:
        g = p["gridPos"]
        check(g["x"] >= 0 and g["x"] + g["w"] <= 24, f"panel {p['title']!r} fits the 24-column grid")
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        check(not (mine & cells), f"panel {p['title']!r} overlaps another")
        cells |= mine
        if p["type"] == "row":
            continue
        check(p.get("datasource", {}).get("uid") == "${datasource}",
              f"panel {p['title']!r} uses the ${{datasource}} variable")
        check(bool(p.get("targets")), f"panel {p['title']!r} has queries")
        refs = [t["refId"] for t in p.get("targets", [])]
        check(len(refs) == len(set(refs)), f"panel {p['title']!r} refIds are unique")
        for t in p.get("targets", []):
            check(t.get("datasource", {}).get("uid") == "${datasource}",
                  f"panel {p['title']!r} query {t['refId']} uses ${{datasource}}")
            exprs.append((p["title"], t["refId"], t["expr"]))
    alltext = "\n".join(e for _, _, e in exprs)
    for m in DASHBOARD_METRICS:
        check(re.search(r"\b" + m + r"\b", alltext) is not None, f"no panel shows {m}")

    # PromQL syntax: each query, with the dashboard variables filled in, as a recording
    # rule that promtool parses.
    def fill(e):
        e = e.replace("$__rate_interval", "5m").replace("$__interval", "1m")
        return re.sub(r"\$\{?[a-z_]+\}?", ".*", e)
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel{i}", "expr": fill(e)} for i, (_, _, e) in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(rules, f)
    try:
        r = subprocess.run([args.promtool, "check", "rules", f.name], capture_output=True, text=True)
        check(r.returncode == 0, f"a dashboard query does not parse:\n{r.stdout}{r.stderr}")
    finally:
        os.unlink(f.name)
    print(f"grafana: {len(panels)} panels, {len(exprs)} queries")
    finish("grafana")


# ---- systemd ---------------------------------------------------------------------------

def parse_unit(text):
    """[Section] -> list of (key, value); repeated keys kept in order."""
    sections, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            cur = sections.setdefault(line.strip("[]"), [])
        else:
            k, v = line.split("=", 1)
            cur.append((k.strip(), v.strip()))
    return sections


def cmd_systemd(args):
    sdir = os.path.join(args.repo, "deploy", "systemd")
    with open(os.path.join(sdir, "sluice.service")) as f:
        unit_text = f.read()
    with open(os.path.join(sdir, "sluice.yaml")) as f:
        config_text = f.read()
    config = yaml.safe_load(config_text)
    unit = parse_unit(unit_text)
    svc = unit.get("Service", [])
    get = lambda k: [v for kk, v in svc if kk == k]
    first = lambda k: (get(k) or [None])[0]

    check(first("Type") == "notify", "Type=notify (READY=1 after recovery and listeners)")
    check(any("kill -HUP $MAINPID" in v for v in get("ExecReload")), "ExecReload sends SIGHUP to $MAINPID")
    check(first("KillSignal") == "SIGTERM", "KillSignal=SIGTERM (sluice's drain signal)")
    shutdown = sluice_duration(config.get("shutdown_timeout", "20s"))
    stop = first("TimeoutStopSec")
    check(stop is not None and systemd_seconds(stop) > shutdown,
          f"TimeoutStopSec {stop} > shutdown_timeout {shutdown}s")
    check(first("Restart") == "on-failure", "Restart=on-failure")
    check("2" in (first("RestartPreventExitStatus") or "").split(),
          "RestartPreventExitStatus=2 (bad config: a restart cannot fix it)")
    check(first("StateDirectory") == "sluice", "StateDirectory=sluice")
    check(config["buffer"]["dir"] == "/var/lib/sluice", "buffer.dir is the StateDirectory /var/lib/sluice")
    for k, v in [("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("NoNewPrivileges", "yes"),
                 ("PrivateTmp", "yes")]:
        check(first(k) == v, f"{k}={v}")
    check(first("DynamicUser") == "yes" or first("User"), "runs as DynamicUser or a dedicated User")
    check(first("LimitNOFILE") is not None, "LimitNOFILE set")
    families = (first("RestrictAddressFamilies") or "").split()
    check(not families or "AF_UNIX" in families, "RestrictAddressFamilies keeps AF_UNIX ($NOTIFY_SOCKET)")
    start = first("ExecStart") or ""
    m = re.search(r"--config (\S+)", start)
    check(m is not None and m.group(1) == "/etc/sluice/sluice.yaml",
          "ExecStart reads /etc/sluice/sluice.yaml (where the example config is installed)")

    if args.sluice:
        sluice_check(args.sluice, config_text, {"SLUICE_ADMIN_TOKEN": "x"}, "deploy/systemd/sluice.yaml")

    # systemd-analyze verify, where systemd is installed, against the built binary
    # (verify insists that ExecStart's binary exists).
    if args.systemd_analyze and shutil.which(args.systemd_analyze) and args.sluice:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "sluice.service")
            with open(path, "w") as f:
                f.write(unit_text.replace("/usr/local/bin/sluice", os.path.abspath(args.sluice)))
            r = subprocess.run([args.systemd_analyze, "verify", path], capture_output=True, text=True)
            check(r.returncode == 0 and not r.stderr.strip(),
                  f"systemd-analyze verify: {r.stdout}{r.stderr}".strip())
    else:
        print("systemd: systemd-analyze not installed, unit syntax not verified")
    finish("systemd")


# ---- docker ----------------------------------------------------------------------------

def cmd_docker(args):
    ddir = os.path.join(args.repo, "deploy", "docker")
    with open(os.path.join(ddir, "Dockerfile")) as f:
        text = f.read()
    # Join continuation lines so that each instruction is one line.
    lines = [l for l in text.replace("\\\n", " ").splitlines() if l.strip() and not l.lstrip().startswith("#")]
    froms = [l for l in lines if l.startswith("FROM ")]
    check(len(froms) == 2 and froms[0].startswith("FROM debian:bookworm AS")
          and froms[1].strip() == "FROM debian:bookworm-slim",
          "two stages: debian:bookworm build, debian:bookworm-slim runtime")
    runtime = lines[lines.index(froms[-1]):] if froms else []

    ep = [l for l in runtime if l.startswith("ENTRYPOINT")]
    check(len(ep) == 1 and json.loads(ep[0][len("ENTRYPOINT"):]) ==
          ["/usr/local/bin/sluice", "--config", "/etc/sluice/sluice.yaml"],
          "exec-form ENTRYPOINT [/usr/local/bin/sluice, --config, /etc/sluice/sluice.yaml]")
    user = [l for l in runtime if l.startswith("USER ")]
    check(len(user) == 1 and re.fullmatch(r"USER [1-9]\d*(:\d+)?", user[0].strip()),
          "runtime USER is a numeric non-root uid")
    check(any(l.startswith("EXPOSE ") for l in runtime), "EXPOSE the ports")
    for l in runtime:
        if l.startswith("COPY ") and "--from" not in l:
            src = l.split()[1]
            check(os.path.exists(os.path.join(args.repo, src)), f"COPY source {src} exists in the repo")
    check(any("scripts/install-deps" in l for l in lines[:lines.index(froms[-1])] if froms),
          "the build stage runs scripts/install-deps")
    check(re.search(r"COPY --from=\S+ /src/build/proxy/sluice /usr/local/bin/sluice", text) is not None,
          "the runtime copies build/proxy/sluice to /usr/local/bin/sluice")

    # The default config is valid with only its required env set.
    with open(os.path.join(ddir, "sluice.yaml")) as f:
        config_text = f.read()
    required = {n: "http://127.0.0.1:9000" if "URL" in n else "x" for n in env_refs(config_text)}
    sluice_check(args.sluice, config_text, required, "deploy/docker/sluice.yaml")

    # The runtime packages cover every shared library the real binary links: the build
    # image and this machine are both Debian bookworm, so ldd here is ldd there.
    # libc6 and libgcc-s1 are in debian:bookworm-slim (essential).
    installed = set()
    for l in runtime:
        m = re.search(r"apt-get install (.*?)(&&|$)", l)
        if m:
            installed |= {w for w in m.group(1).split() if not w.startswith("-")}
    base = {"libc6", "libgcc-s1"}
    r = subprocess.run(["ldd", args.sluice], capture_output=True, text=True)
    check(r.returncode == 0, f"ldd {args.sluice}: {r.stderr}")
    for line in r.stdout.splitlines():
        m = re.search(r"=> (/\S+)", line) or re.match(r"\s*(/\S+)", line)
        if not m:
            continue  # linux-vdso
        lib = m.group(1)
        check("not found" not in line, f"ldd: {line.strip()}")
        pkg = None
        for cand in (lib, "/usr" + lib, os.path.realpath(lib)):
            q = subprocess.run(["dpkg", "-S", cand], capture_output=True, text=True)
            if q.returncode == 0:
                pkg = q.stdout.split(":")[0]
                break
        if check(pkg is not None, f"no Debian package owns {lib}"):
            check(pkg in installed | base,
                  f"{lib} comes from {pkg}, which the runtime stage does not install")
    print(f"docker: runtime packages {sorted(installed)}")
    finish("docker")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("kubernetes"); k.add_argument("repo"); k.add_argument("--sluice"); k.add_argument("--kubectl", default="kubectl")
    g = sub.add_parser("grafana"); g.add_argument("repo"); g.add_argument("--promtool", default="promtool")
    s = sub.add_parser("systemd"); s.add_argument("repo"); s.add_argument("--sluice"); s.add_argument("--systemd-analyze", default="systemd-analyze")
    d = sub.add_parser("docker"); d.add_argument("repo"); d.add_argument("--sluice", required=True)
    c = sub.add_parser("configmap-key"); c.add_argument("repo"); c.add_argument("key")
    args = ap.parse_args()
    {"kubernetes": cmd_kubernetes, "grafana": cmd_grafana, "systemd": cmd_systemd,
     "docker": cmd_docker, "configmap-key": cmd_configmap_key}[args.cmd](args)


if __name__ == "__main__":
    main()
