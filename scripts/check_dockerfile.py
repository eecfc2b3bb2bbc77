#!/usr/bin/env python3
"""The scratch image's contract, read from Dockerfile.scratch (called by
scripts/check-manifests.sh; scripts/scratch-test.sh runs the same contract).

  scripts/check_dockerfile.py [DOCKERFILE]     # default Dockerfile.scratch

Checks the final stage: FROM scratch; exactly one file copied in (the binary
the build stage's cargo command produces), no RUN/ADD; a numeric non-root
USER 65532:65532; ENTRYPOINT in exec form naming that file; EXPOSE 8000;
STOPSIGNAL SIGTERM; the OCI labels, with their ARGs declared in the stage and
version/licenses agreeing with Cargo.toml; and that .dockerignore keeps what
the build needs. Prints `ok   ...` / `FAIL ...` per check; exit 1 if any failed.
Standard library only.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import sys
import tomllib
from pathlib import Path

UID_GID = (65532, 65532)
PORT = 8000
BINARY = "slpocapp"
OCI_LABELS = ["title", "description", "version", "source", "licenses"]

# One way of reporting for every check script: the helpers of check_consistency.py.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import check_consistency as report  # noqa: E402
from check_consistency import check, fail, ok  # noqa: E402,F401


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments
    dropped (default escape character \\; no parser directives used)."""
    out, buf = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):  # comment lines inside a continuation
            continue
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    if buf:
        raise SystemExit(f"FAIL dangling line continuation at the end: {buf!r}")
    return out


def stages(instrs: list[tuple[str, str]]) -> list[dict]:
    out = []
    for ins, args in instrs:
        if ins == "FROM":
            m = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", args, re.I)
            if not m:
                raise SystemExit(f"FAIL cannot read FROM {args!r}")
            out.append({"image": m.group(1), "name": m.group(2), "instrs": []})
        elif out:
            out[-1]["instrs"].append((ins, args))
    return out


def flags_and_args(args: str) -> tuple[dict, list[str]]:
    """COPY/ADD/RUN style: leading --flag=value options, then the rest (shlex)."""
    words = shlex.split(args, posix=True)
    flags = {}
    while words and words[0].startswith("--"):
        k, _, v = words.pop(0)[2:].partition("=")
        flags[k] = v
    return flags, words


def label_pairs(args: str) -> dict:
    out = {}
    for w in shlex.split(args, posix=True):
        k, sep, v = w.partition("=")
        if not sep:
            raise SystemExit(f"FAIL LABEL without key=value: {w!r} (the legacy `LABEL key value` form is not supported)")
        out[k] = v
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[1] if len(argv) > 1 else "Dockerfile.scratch")
    instrs = instructions(path.read_text())
    st = stages(instrs)
    if not check(len(st) >= 2, f"{path}: a build stage and a final stage ({len(st)} stages)"):
        return 1
    final, build_stages = st[-1], {s["name"]: s for s in st[:-1] if s["name"]}
    check(final["image"] == "scratch", f"final stage is FROM scratch", f"FROM {final['image']}")
    kinds = [i for i, _ in final["instrs"]]

    # --- exactly one file, the binary the build stage produces
    copies = [(i, a) for i, a in final["instrs"] if i in ("COPY", "ADD")]
    check(not [1 for i, _ in copies if i == "ADD"], "final stage uses COPY, not ADD")
    check("RUN" not in kinds, "final stage has no RUN (scratch has no shell)")
    dest = None
    if check(len(copies) == 1, f"final stage copies in exactly one thing ({len(copies)} COPY/ADD)"):
        flags, words = flags_and_args(copies[0][1])
        if words and words[0].startswith("["):  # JSON form
            words = json.loads(copies[0][1][copies[0][1].index("["):])
        srcs, dest = words[:-1], words[-1] if words else None
        src_stage = build_stages.get(flags.get("from", ""))
        check(len(srcs) == 1 and "*" not in srcs[0] and "?" not in srcs[0] and not srcs[0].endswith("/"),
              f"the COPY has exactly one source file, no wildcard or directory ({srcs})")
        check(src_stage is not None, f"the COPY comes --from a build stage of this Dockerfile (--from={flags.get('from')})",
              f"stages: {sorted(build_stages)}")
        check(dest == f"/{BINARY}", f"the COPY's destination is the file /{BINARY}", f"got {dest!r}")
        if src_stage is not None and len(srcs) == 1:
            workdir, produced = "/", None
            for ins, args in src_stage["instrs"]:
                if ins == "WORKDIR":
                    workdir = args if args.startswith("/") else workdir.rstrip("/") + "/" + args
                if ins == "RUN" and "cargo build" in args:
                    _, words = flags_and_args(args)
                    cmd = words[words.index("cargo"):] if "cargo" in words else []
                    opt = lambda name: cmd[cmd.index(name) + 1] if name in cmd and cmd.index(name) + 1 < len(cmd) else None
                    triple, binname = opt("--target"), opt("--bin")
                    profile = "release" if "--release" in cmd else "debug"
                    produced = f"{workdir.rstrip('/')}/target/{triple}/{profile}/{binname}" if triple else \
                        f"{workdir.rstrip('/')}/target/{profile}/{binname}"
                    check(binname == BINARY and "--locked" in cmd and "--release" in cmd,
                          f"build stage: cargo build --release --locked --bin {binname} --target {triple}")
                    check(triple is not None and "musl" in triple, f"build stage targets musl ({triple}): a static binary")
            check(produced is not None and srcs[0] == produced,
                  f"the COPY's source {srcs[0]} is what the build stage's cargo build writes", f"cargo writes {produced}")

    # --- user
    users = [a for i, a in final["instrs"] if i == "USER"]
    if check(len(users) == 1, f"final stage sets USER once ({users})"):
        m = re.fullmatch(r"(\d+):(\d+)", users[0])
        check(m is not None, f"USER {users[0]} is numeric uid:gid (no /etc/passwd in scratch)")
        if m:
            uid, gid = int(m.group(1)), int(m.group(2))
            check(uid != 0 and gid != 0 and (uid, gid) == UID_GID, f"USER {uid}:{gid} is the non-root {UID_GID[0]}:{UID_GID[1]}")

    # --- entrypoint
    eps = [a for i, a in final["instrs"] if i == "ENTRYPOINT"]
    if check(len(eps) == 1, f"final stage has one ENTRYPOINT ({len(eps)})"):
        try:
            ep = json.loads(eps[0])
        except json.JSONDecodeError:
            ep = None
        check(isinstance(ep, list) and ep and all(isinstance(x, str) for x in ep),
              f"ENTRYPOINT is exec form (a JSON array): {eps[0]}", "shell form needs /bin/sh, which scratch lacks")
        if isinstance(ep, list) and ep and dest is not None:
            check(ep[0] == dest, f"ENTRYPOINT runs the copied file {dest}", f"runs {ep[0]!r}")
    for cmd in [a for i, a in final["instrs"] if i == "CMD"]:
        check(cmd.startswith("["), f"CMD is exec form: {cmd}")

    # --- port, stop signal
    exposed = [p for i, a in final["instrs"] if i == "EXPOSE" for p in a.split()]
    check(exposed in ([str(PORT)], [f"{PORT}/tcp"]), f"EXPOSE {PORT} (only)", f"got {exposed}")
    stops = [a for i, a in final["instrs"] if i == "STOPSIGNAL"]
    check(stops in ([], ["SIGTERM"], ["15"]), f"STOPSIGNAL is SIGTERM ({stops or 'default'}): the binary stops on it within 1 s")

    # --- OCI labels
    labels = {}
    for i, a in final["instrs"]:
        if i == "LABEL":
            labels.update(label_pairs(a))
    args = {}
    for i, a in final["instrs"]:
        if i == "ARG":
            k, _, v = a.partition("=")
            args[k] = v.strip('"')
    missing = [n for n in OCI_LABELS if f"org.opencontainers.image.{n}" not in labels]
    check(not missing, f"OCI labels org.opencontainers.image.{{{','.join(OCI_LABELS)}}} in the final stage",
          f"missing {missing}")
    used = {v for val in labels.values() for v in re.findall(r"\$\{?(\w+)", val)}
    check(used <= set(args), f"every ARG the labels use is declared in the final stage ({sorted(used)})",
          f"undeclared (an ARG before FROM is out of scope after it): {sorted(used - set(args))}")
    resolve = lambda v: re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), v)
    cargo = tomllib.loads(Path("Cargo.toml").read_text())["package"]
    version = resolve(labels.get("org.opencontainers.image.version", ""))
    check(version == cargo["version"], f"label version {version!r} (default) equals Cargo.toml version {cargo['version']!r}")
    lic = labels.get("org.opencontainers.image.licenses")
    check(lic == cargo.get("license"), f"label licenses {lic!r} equals Cargo.toml license {cargo.get('license')!r}")

    # --- build context
    ignore = Path(".dockerignore")
    if ignore.exists():
        pats = [l.strip() for l in ignore.read_text().splitlines() if l.strip() and not l.startswith("#")]
        needed = ["Cargo.toml", "Cargo.lock", "src/lib.rs", f"src/bin/{BINARY}/main.rs", ".cargo/config.toml"]
        hit = {n: p for n in needed for p in pats
               if not p.startswith("!") and (fnmatch.fnmatch(n, p.lstrip("/")) or fnmatch.fnmatch(n, p.lstrip("/") + "/*")
                                             or fnmatch.fnmatch(n, p.replace("**/", "")))}
        check(not hit, f".dockerignore keeps what the build needs ({', '.join(needed)}: .cargo/config.toml "
                       f"carries the static-linking rustflags)", f"excluded: {hit}")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
