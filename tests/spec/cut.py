#!/usr/bin/env python3
"""Cut the published Platform.sh OpenAPI spec down to what bbsync's tests use.

The published spec (https://docs.platform.sh/api/, file ``openapispec-platformsh.json``)
is close to 1 MB. bbsync's integration tests (``tests/it/openapi.rs``) only need the
integration, activity, environment and organization-project schemas, so this script
writes a deterministic, much smaller cut of it, which is committed to the repository:

    python3 tests/spec/cut.py path/to/openapispec-platformsh.json

writes ``tests/spec/openapispec-platformsh.cut.json`` (next to this script). The cut keeps

* the ``paths`` entries in ``PATHS`` (whole path items, every method), and nothing else;
* the component schemas in ``ROOT_SCHEMAS``, every schema whose name matches
  ``INTEGRATION_SCHEMA`` (the create, patch and read bodies of every integration type),
  and everything those and the kept paths ``$ref``, transitively (any ``#/components/...``);
* ``openapi``, ``servers``, the top-level ``security`` with the security schemes it and the
  kept operations name, and the ``tags`` the kept operations use.

``info`` keeps the spec's own title and version and gains ``x-bbsync-source``: the source
file's name, its sha256, its ``info.title``/``info.version`` and the date of the cut.
Output is JSON with sorted keys and an indent of 1, so two runs on the same source on the
same day (or with the same ``--date``) write the same bytes.

Options:
  -o, --output PATH   where to write (default: openapispec-platformsh.cut.json beside this script)
  --date YYYY-MM-DD   the date recorded as ``cut_date`` (default: today, UTC)
  --check             write nothing; exit 1 unless the output file already equals what this
                      run would write (with the date recorded in that file)

Python 3 standard library only. Exits non-zero with a message if the source lacks a path or
schema the cut needs, or holds a ``$ref`` this script cannot resolve.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import sys
from pathlib import Path

#: The API paths bbsync calls; kept whole in the cut.
PATHS = [
    "/organizations/{organization_id}/projects",
    "/projects/{projectId}/activities",
    "/projects/{projectId}/environments",
    "/projects/{projectId}/integrations",
    "/projects/{projectId}/integrations/{integrationId}",
]

#: Schemas kept by name (besides those the kept paths reference).
ROOT_SCHEMAS = [
    # Accepted-response envelope of integration writes (POST/PATCH/DELETE).
    "AcceptedResponse",
    # Activities.
    "Activity",
    "ActivityCollection",
    # Environments.
    "Environment",
    "EnvironmentCollection",
    # Errors, and the links of the organization-projects page ({items, _links}).
    "Error",
    "ListLinks",
    # Integrations: read, create and patch unions (their oneOf lists every type).
    "Integration",
    "IntegrationCollection",
    "IntegrationCreateInput",
    "IntegrationPatch",
    # Organization projects.
    "OrganizationProject",
]

#: Every integration type's read, create and patch schema, e.g. BitbucketIntegration,
#: BitbucketIntegrationCreateInput, BitbucketServerIntegrationPatch.
INTEGRATION_SCHEMA = re.compile(r"^[A-Za-z]*Integration(CreateInput|Patch|Collection)?$")

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "openapispec-platformsh.cut.json"


class CutError(Exception):
    pass


def refs(node, found: set[str]) -> set[str]:
    """Every ``$ref`` string in ``node``, recursively."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                found.add(value)
            else:
                refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)
    return found


def component(spec: dict, ref: str) -> tuple[str, str]:
    """``#/components/schemas/Name`` -> ``("schemas", "Name")``, checked to exist."""
    parts = ref.split("/")
    if len(parts) != 4 or parts[0] != "#" or parts[1] != "components":
        raise CutError(f"unsupported $ref {ref!r} (only #/components/<kind>/<name>)")
    kind, name = parts[2], parts[3].replace("~1", "/").replace("~0", "~")
    if name not in spec.get("components", {}).get(kind, {}):
        raise CutError(f"unresolvable $ref {ref!r}")
    return kind, name


def cut(spec: dict, source_name: str, source_sha256: str, date: str) -> dict:
    info = spec.get("info", {})
    paths = {}
    for path in PATHS:
        if path not in spec.get("paths", {}):
            raise CutError(f"the source has no path {path!r}")
        paths[path] = spec["paths"][path]

    schemas = spec.get("components", {}).get("schemas", {})
    missing = [name for name in ROOT_SCHEMAS if name not in schemas]
    if missing:
        raise CutError(f"the source has no schema(s) {', '.join(missing)}")
    wanted = {("schemas", name) for name in ROOT_SCHEMAS}
    wanted |= {("schemas", name) for name in schemas if INTEGRATION_SCHEMA.match(name)}
    wanted |= {component(spec, ref) for ref in refs(paths, set())}

    # Transitive closure over $ref.
    kept: set[tuple[str, str]] = set()
    todo = sorted(wanted)
    while todo:
        key = todo.pop()
        if key in kept:
            continue
        kept.add(key)
        kind, name = key
        for ref in refs(spec["components"][kind][name], set()):
            todo.append(component(spec, ref))

    components: dict = {}
    for kind, name in kept:
        components.setdefault(kind, {})[name] = spec["components"][kind][name]

    operations = [
        op
        for item in paths.values()
        for method, op in item.items()
        if method in HTTP_METHODS and isinstance(op, dict)
    ]

    # Security schemes are named (not $ref'd) by security requirements.
    security = spec.get("security", [])
    scheme_names = {
        name
        for requirement in security + [r for op in operations for r in op.get("security", [])]
        for name in requirement
    }
    all_schemes = spec.get("components", {}).get("securitySchemes", {})
    for name in sorted(scheme_names):
        if name not in all_schemes:
            raise CutError(f"unknown security scheme {name!r}")
        components.setdefault("securitySchemes", {})[name] = all_schemes[name]

    tag_names = {tag for op in operations for tag in op.get("tags", [])}
    tags = [tag for tag in spec.get("tags", []) if tag.get("name") in tag_names]

    out_info = {
        key: info[key] for key in ("title", "version", "contact", "termsOfService") if key in info
    }
    out_info["description"] = (
        "A cut of the published Platform.sh OpenAPI spec (https://docs.platform.sh/api/): "
        "only the paths and component schemas bbsync's tests use. Generated by "
        "tests/spec/cut.py; do not edit by hand."
    )
    out_info["x-bbsync-source"] = {
        "file": source_name,
        "sha256": source_sha256,
        "title": info.get("title"),
        "version": info.get("version"),
        "openapi": spec.get("openapi"),
        "url": "https://docs.platform.sh/api/",
        "cut_date": date,
        "cut_by": "tests/spec/cut.py",
        "paths": sorted(paths),
        "schemas": len(components.get("schemas", {})),
    }

    out = {"openapi": spec.get("openapi"), "info": out_info, "paths": paths, "components": components}
    if "servers" in spec:
        out["servers"] = spec["servers"]
    if security:
        out["security"] = security
    if tags:
        out["tags"] = tags
    return out


def render(document: dict) -> str:
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Cut the Platform.sh OpenAPI spec down to what bbsync's tests use.",
    )
    parser.add_argument("source", type=Path, help="the published openapispec-platformsh.json")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--date", help="cut_date to record (YYYY-MM-DD; default today, UTC)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; fail unless OUTPUT already equals this cut (at its recorded date)",
    )
    args = parser.parse_args(argv)

    raw = args.source.read_bytes()
    sha256 = hashlib.sha256(raw).hexdigest()
    spec = json.loads(raw)

    date = args.date
    if args.check and date is None:
        try:
            existing = json.loads(args.output.read_text(encoding="utf-8"))
            date = existing["info"]["x-bbsync-source"]["cut_date"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            print(f"cut.py: cannot read the cut date from {args.output}: {error}", file=sys.stderr)
            return 1
    if date is None:
        date = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    else:
        datetime.date.fromisoformat(date)

    try:
        text = render(cut(spec, args.source.name, sha256, date))
    except CutError as error:
        print(f"cut.py: {error}", file=sys.stderr)
        return 1

    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            print(f"cut.py: {args.output} is not the cut of {args.source}; rerun without --check", file=sys.stderr)
            return 1
        print(f"{args.output}: up to date ({len(text.encode())} bytes)")
        return 0

    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    schemas = len(json.loads(text)["components"].get("schemas", {}))
    print(f"wrote {args.output}: {len(text.encode())} bytes, {len(PATHS)} paths, {schemas} schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
