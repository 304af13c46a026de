#!/usr/bin/python3
"""check-manifest.py MANIFEST UNIT OUTDIR - what the DaemonSet must say.

The manifest parses; the DaemonSet's sockmeshd container asks for exactly
the capabilities of the systemd unit's CapabilityBoundingSet= (drops ALL,
not privileged, no privilege escalation), mounts the node's /sys/fs/bpf,
cgroup2 hierarchy and /run/sockmesh, probes /healthz on the port the
ConfigMap's metrics key names, has a preStop that never unloads; the
config-watcher has no capability. Writes the ConfigMap's sockmesh.ini and
the shell snippets to OUTDIR for the caller to run `sockmeshd --check` and
`sh -n` on. Prints one line per problem and exits 1, or exits 0.
"""
import os
import re
import sys

import yaml


def main():
    manifest, unit, outdir = sys.argv[1:4]
    problems = []

    def need(cond, what):
        if not cond:
            problems.append(what)
        return cond

    with open(manifest) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    by_kind = {d["kind"]: d for d in docs}
    for kind in ("ConfigMap", "DaemonSet"):
        if not need(kind in by_kind, "no %s in %s" % (kind, manifest)):
            print("\n".join(problems))
            return 1

    with open(unit) as f:
        caps = next(
            (
                line.split("=", 1)[1].split()
                for line in f
                if line.startswith("CapabilityBoundingSet=")
            ),
            [],
        )
    want_caps = sorted(c[len("CAP_"):] for c in caps)

    ini = by_kind["ConfigMap"]["data"]["sockmesh.ini"]
    with open(os.path.join(outdir, "configmap.ini"), "w") as f:
        f.write(ini)
    os.chmod(os.path.join(outdir, "configmap.ini"), 0o644)
    m = re.search(r"^metrics\s*=\s*\S+:(\d+)", ini, re.M)
    need(m, "the ConfigMap's config has no metrics ADDRESS:PORT (liveness needs it)")
    port = int(m.group(1)) if m else None
    need(
        re.search(r"^on_exit\s*=\s*keep\b", ini, re.M),
        "the ConfigMap's config does not say on_exit = keep",
    )

    pod = by_kind["DaemonSet"]["spec"]["template"]["spec"]
    need(not pod.get("hostPID"), "hostPID is set")
    ctrs = {c["name"]: c for c in pod["containers"]}
    d = ctrs.get("sockmeshd")
    if not need(d, "no sockmeshd container"):
        print("\n".join(problems))
        return 1
    sc = d.get("securityContext", {})
    need(not sc.get("privileged"), "sockmeshd is privileged")
    need(
        sc.get("allowPrivilegeEscalation") is False,
        "allowPrivilegeEscalation is not false",
    )
    need(sc.get("capabilities", {}).get("drop") == ["ALL"], "does not drop ALL")
    got_caps = sorted(sc.get("capabilities", {}).get("add", []))
    need(
        got_caps == want_caps,
        "capabilities %s, the unit has %s" % (got_caps, want_caps),
    )

    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m for m in d.get("volumeMounts", [])}
    for path, host in (
        ("/sys/fs/bpf", "/sys/fs/bpf"),
        ("/sys/fs/cgroup", "/sys/fs/cgroup"),
        ("/run/sockmesh", "/run/sockmesh"),
    ):
        mnt = mounts.get(path)
        if need(mnt, "sockmeshd does not mount %s" % path):
            vol = volumes.get(mnt["name"], {})
            need(
                vol.get("hostPath", {}).get("path") == host,
                "%s is not the node's %s" % (path, host),
            )
            need(not mnt.get("readOnly"), "%s is read-only" % path)
    cfg = mounts.get("/etc/sockmesh")
    need(
        cfg and "configMap" in volumes.get(cfg["name"], {}) and "subPath" not in cfg,
        "/etc/sockmesh is not the ConfigMap as a directory (a subPath never updates)",
    )

    probe = d.get("livenessProbe", {}).get("httpGet", {})
    need(probe.get("path") == "/healthz", "the liveness probe is not GET /healthz")
    ports = {p["name"]: p["containerPort"] for p in d.get("ports", [])}
    pport = ports.get(probe.get("port"), probe.get("port"))
    need(pport == port, "the liveness probe's port %s is not metrics' %s" % (pport, port))

    pre = d.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    if need(pre, "no preStop"):
        need("unload" not in " ".join(pre), "the preStop unloads the datapath")
        if pre[:2] == ["/bin/sh", "-c"]:
            with open(os.path.join(outdir, "prestop.sh"), "w") as f:
                f.write(pre[2])

    w = ctrs.get("config-watcher")
    if need(w, "no config-watcher container"):
        wsc = w.get("securityContext", {})
        need(
            wsc.get("capabilities", {}).get("drop") == ["ALL"]
            and not wsc.get("capabilities", {}).get("add"),
            "the config-watcher has capabilities",
        )
        cmd = w.get("command", [])
        if need(cmd[:2] == ["/bin/sh", "-c"], "the config-watcher is not a sh -c script"):
            need("sockmesh reload" in cmd[2], "the config-watcher does not run sockmesh reload")
            with open(os.path.join(outdir, "watcher.sh"), "w") as f:
                f.write(cmd[2])

    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
