"""Loading specs: positions of every kind of error, merging, duplicates, kv_dir, file values."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from gitkv.errors import GitkvError, SpecError
from gitkv.spec.load import check_spec, load_spec
from gitkv.spec.model import KVFile


def write(base: Path, name: str, text: str) -> Path:
    path = base / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def problems(path: Path) -> list[str]:
    """Diagnostics as `name:line:col: message`, paths relative to the spec's directory."""
    loaded, found = check_spec(path)
    assert loaded is None
    base = path if path.is_dir() else path.parent
    return [str(d).replace(str(base) + "/", "") for d in found]


GOOD = """
    version: 1
    datacenters:
      dc1:
        agents:
          n1: {server: true}
        kv:
          app/a: "1"
        services:
          - name: web
            agent: n1
            checks: [{http: "http://127.0.0.1/", interval: 10s}]
"""


def test_good_spec_loads(tmp_path: Path) -> None:
    loaded = load_spec(write(tmp_path, "spec.yaml", GOOD))
    assert loaded.base_dir == tmp_path
    assert loaded.spec.datacenters["dc1"].kv == {"app/a": "1"}
    assert len(loaded.digest) == 64


def test_schema_errors_point_at_their_place(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        version: 1
        datacenters:
          dc1:
            agents:
              n1: {server: yes-please, bind: 10.0.0}
            kv:
              app/count: 3
            services:
              - name: web
                agent: n1
                prot: 80
                checks:
                  - {tcp: "x:1", interval: 10}
                  - {http: "http://x/"}
              - {agent: n1}
        """,
    )
    assert problems(path) == [
        "spec.yaml:5:20: server: Input should be a valid boolean",
        "spec.yaml:5:38: bind: invalid IP address '10.0.0'",
        'spec.yaml:7:18: a KV value must be a string (quote numbers and booleans, e.g. "3"), '
        "or one of {value: ...}, {file: ...}, {json: ...}",
        "spec.yaml:11:9: unknown field 'prot' (did you mean 'port'?)",
        "spec.yaml:13:36: interval: expected a duration such as 10s or 1m30s, got 10",
        "spec.yaml:14:13: checks[1]: http checks need an interval, e.g. interval: 10s",
        "spec.yaml:15:9: missing required field 'name'",
    ]


def test_missing_top_level_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", "version: 2\n")
    assert problems(path) == [
        "spec.yaml:1:1: missing required field 'datacenters'",
        "spec.yaml:1:10: unsupported spec version 2 (this gitkv reads version 1)",
    ]


def test_yaml_syntax_error(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", "version: 1\ndatacenters: {dc1: [\n")
    (found,) = problems(path)
    assert found.startswith("spec.yaml:3:1: ")


def test_duplicate_key_in_one_mapping(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        version: 1
        datacenters:
          dc1:
            kv:
              a: x
              b: y
              a: z
        """,
    )
    assert problems(path) == [
        "spec.yaml:7:7: duplicate key 'a' in the same mapping (mapping starts at line 5)"
    ]


def test_not_a_mapping_and_empty_files(tmp_path: Path) -> None:
    assert problems(write(tmp_path, "list.yaml", "- a\n")) == [
        "list.yaml:1:1: a spec file must be a mapping (version, datacenters, ...)"
    ]
    assert problems(write(tmp_path, "empty.yaml", "")) == [
        "empty.yaml:1:1: missing required field 'datacenters'",
        "empty.yaml:1:1: missing required field 'version'",
    ]


def test_missing_spec_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(GitkvError, match="not found"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(GitkvError, match="no \\*.yaml"):
        load_spec(tmp_path)


def test_load_spec_raises_all_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "spec.yaml", "version: 1\ndatacenters: {dc1: {kv: {a: 1, b: 2}}}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert [(d.line, d.col) for d in info.value.diagnostics] == [(2, 29), (2, 35)]
    assert "2 errors" in str(info.value)


def test_semantic_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        version: 1
        datacenters:
          dc1:
            agents: {n1: {}}
            kv_prefixes: [app/]
            kv:
              app/a: {file: files/missing.txt}
              other/b: x
            services:
              - {name: web, agent: n2}
              - {name: api, agent: n1, checks: [{ttl: 5s, id: c}, {ttl: 5s, id: c}]}
              - {name: api, agent: n1}
            external_services:
              - {node: n1, address: 10.0.0.1}
              - {node: db, address: 10.0.0.2, services: [{name: pg}, {name: pg}]}
              - {node: db, address: 10.0.0.3}
        """,
    )
    assert problems(path) == [
        "spec.yaml:7:21: file 'files/missing.txt' not found (looked for files/missing.txt)",
        "spec.yaml:8:7: kv key 'other/b' is outside kv_prefixes (app/)",
        "spec.yaml:10:28: unknown agent 'n2' (agents of 'dc1': n1)",
        "spec.yaml:11:59: duplicate check id 'c' (first defined at spec.yaml:11:41)",
        "spec.yaml:12:9: duplicate service id 'api' on agent 'n1' (first defined at spec.yaml:11:9)",
        "spec.yaml:14:16: external node 'n1' has the name of an agent",
        "spec.yaml:15:62: duplicate service id 'pg' on node 'db' (first defined at spec.yaml:15:50)",
        "spec.yaml:16:9: duplicate external node 'db' (first defined at spec.yaml:15:9)",
    ]


def test_acl_references_and_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        version: 1
        datacenters:
          dc1:
            acl:
              policies:
                p1: {rules: 'key_prefix "app/" { policy = "raed" }'}
                p2:
                  rules: |
                    key_prefix "" { policy = "read" }
                      operatr = "read"
                p3: {rules: '{"key_prefix": {"": {"policy": "read"}}}'}
              roles:
                r1: {policies: [p1, nope]}
              tokens:
                t1: {policies: [global-management, p3, gone], roles: [r1, r9], secret: {env: T1}}
        """,
    )
    assert problems(path) == [
        "spec.yaml:6:51: ACL rules: invalid policy 'raed' for key_prefix (one of read, write, deny, list)",
        "spec.yaml:10:15: ACL rules: unknown ACL resource 'operatr' (did you mean 'operator'?)",
        "spec.yaml:13:29: unknown policy 'nope' (defined: p1, p2, p3)",
        "spec.yaml:15:48: unknown policy 'gone' (defined: p1, p2, p3)",
        "spec.yaml:15:67: unknown role 'r9' (defined: r1)",
    ]


def test_inline_secret_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        "version: 1\ndatacenters:\n  dc1:\n    acl: {tokens: {t: {secret: hunter2}}}\n",
    )
    (found,) = problems(path)
    assert found.startswith("spec.yaml:4:32: secret: inline secrets are not allowed")


# --- directories ----------------------------------------------------------------------------


def test_directory_spec_merges_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "version: 1\ndatacenters: {dc1: {agents: {n1: {}}, kv: {x: '1'}}}\n")
    write(
        tmp_path,
        "b.yml",
        "version: 1\ndatacenters: {dc1: {kv: {y: '2'}, services: [{name: w, agent: n1}]}, dc2: {}}\n",
    )
    write(tmp_path, "notes.txt", "not yaml")
    write(tmp_path, "sub/ignored.yaml", "this: [is not read")
    loaded = load_spec(tmp_path)
    assert [f.name for f in loaded.files] == ["a.yaml", "b.yml"]
    dc1 = loaded.spec.datacenters["dc1"]
    assert dc1.kv == {"x": "1", "y": "2"} and len(dc1.services) == 1
    assert set(loaded.spec.datacenters) == {"dc1", "dc2"}


def test_duplicates_across_files_name_both_places(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """
        version: 1
        datacenters:
          dc1:
            address: http://127.0.0.1:8500
            agents: {n1: {}}
            kv: {x: '1'}
            services: [{name: w, agent: n1}]
            acl: {policies: {p: {}}}
        """,
    )
    write(
        tmp_path,
        "b.yaml",
        """
        version: 1
        datacenters:
          dc1:
            address: http://127.0.0.2:8500
            agents: {n1: {}}
            kv: {x: '2'}
            services: [{name: w, agent: n1}]
            acl: {policies: {p: {}}}
        """,
    )
    assert problems(tmp_path) == [
        "b.yaml:4:5: 'address' is also set at a.yaml:4:5, differently",
        "b.yaml:5:14: duplicate agent 'n1' (first defined at a.yaml:5:14)",
        "b.yaml:6:10: duplicate kv key 'x' (first defined at a.yaml:6:10)",
        "b.yaml:7:16: duplicate service id 'w' on agent 'n1' (first defined at a.yaml:7:16)",
        "b.yaml:8:22: duplicate policy 'p' (first defined at a.yaml:8:22)",
    ]


def test_same_scalar_in_two_files_is_fine(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "version: 1\nprune: true\ndatacenters: {dc1: {}}\n")
    write(tmp_path, "b.yaml", "version: 1\nprune: true\ndatacenters: {dc1: {}}\n")
    assert load_spec(tmp_path).spec.prune is True


def test_file_references_resolve_beside_the_spec(tmp_path: Path) -> None:
    write(tmp_path, "conf/web.json", '{"a": 1}')
    path = write(
        tmp_path, "spec.yaml", "version: 1\ndatacenters: {dc1: {kv: {w: {file: conf/web.json}}}}\n"
    )
    entry = load_spec(path).spec.datacenters["dc1"].kv["w"]
    assert isinstance(entry, KVFile)
    assert entry.file == "conf/web.json"
    assert problems(
        write(tmp_path, "bad.yaml", "version: 1\ndatacenters: {dc1: {kv: {w: {file: conf}}}}\n")
    ) == ["bad.yaml:2:36: file 'conf' is a directory, not a file (looked for conf)"]


def test_value_size_limit(tmp_path: Path) -> None:
    write(tmp_path, "big.bin", "x" * (512 * 1024 + 1))
    path = write(
        tmp_path, "spec.yaml", "version: 1\ndatacenters: {dc1: {kv: {big: {file: big.bin}}}}\n"
    )
    assert problems(path) == [
        "spec.yaml:2:26: value of 'big' is 524289 bytes; Consul's limit is 524288"
    ]


# --- kv_dir ---------------------------------------------------------------------------------


def test_kv_dir_maps_files_to_keys(tmp_path: Path) -> None:
    write(tmp_path, "kv/app/a", "A")
    write(tmp_path, "kv/app/deep/b.json", "{}")
    write(tmp_path, "kv/.gitkeep", "")
    write(tmp_path, "kv/app/.hidden/c", "C")
    write(tmp_path, "more/z", "Z")
    path = write(
        tmp_path,
        "spec.yaml",
        """
        version: 1
        datacenters:
          dc1:
            kv: {top: t}
            kv_dir: [kv, {path: more, prefix: extra/}]
        """,
    )
    kv = load_spec(path).spec.datacenters["dc1"].kv
    assert {k: getattr(v, "file", v) for k, v in kv.items()} == {
        "top": "t",
        "app/a": "kv/app/a",
        "app/deep/b.json": "kv/app/deep/b.json",
        "extra/z": "more/z",
    }


def test_kv_dir_errors(tmp_path: Path) -> None:
    write(tmp_path, "kv/a", "A")
    path = write(
        tmp_path,
        "spec.yaml",
        """
        version: 1
        datacenters:
          dc1:
            kv:
              a: dup
            kv_dir: [kv, nowhere]
        """,
    )
    assert problems(path) == [
        "spec.yaml:5:7: duplicate kv key 'a' (also a file of kv_dir 'kv' at spec.yaml:6:14)",
        "spec.yaml:6:18: kv_dir 'nowhere' is not a directory (looked for nowhere)",
    ]


def test_did_you_mean_inside_unions(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        version: 1
        datacenters:
          dc1:
            kv: {a: {value: x, flgs: 1}}
            acl: {tokens: {t: {secret: {env: X, fiel: y}}}}
        """,
    )
    assert problems(path) == [
        "spec.yaml:4:24: unknown field 'flgs' (did you mean 'flags'?)",
        "spec.yaml:5:41: unknown field 'fiel'",
    ]


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "spec.yaml",
        """
        version: 1
        x-web: &web {agent: n1, port: 80}
        datacenters:
          dc1:
            agents: {n1: {}}
            services:
              - {<<: *web, name: a}
              - {<<: *web, name: b, port: 81}
        """,
    )
    # Unknown top-level keys are errors even when only used as anchors...
    assert problems(path) == ["spec.yaml:2:1: unknown field 'x-web'"]
    # ...but anchors and merge keys themselves work.
    text = textwrap.dedent(
        """
        version: 1
        datacenters:
          dc1:
            agents: {n1: &agent {}}
            services:
              - &svc {agent: n1, port: 80, name: a}
              - {<<: *svc, name: b, prot: 81}
        """
    ).lstrip("\n")
    path.write_text(text)
    assert problems(path) == ["spec.yaml:7:29: unknown field 'prot' (did you mean 'port'?)"]
    path.write_text(text.replace("prot", "port"))
    services = load_spec(path).spec.datacenters["dc1"].services
    assert [(s.name, s.port, s.agent) for s in services] == [("a", 80, "n1"), ("b", 81, "n1")]


def test_fast_and_precise_loads_agree() -> None:
    from gitkv.spec.load import _check

    root = Path(__file__).resolve().parents[2] / "examples"
    for name in ("quickstart", "shenzhen"):
        spec_dir = root / name
        sources = [(str(f), f.read_bytes()) for f in sorted(spec_dir.glob("*.yaml"))]
        fast, fast_problems = _check(sources, spec_dir, precise=False)
        precise, precise_problems = _check(sources, spec_dir, precise=True)
        assert fast_problems == precise_problems == []
        assert fast == precise and fast is not None


def test_non_string_keys(tmp_path: Path) -> None:
    path = write(
        tmp_path, "spec.yaml", "version: 1\ndatacenters:\n  dc1:\n    kv:\n      2024: x\n"
    )
    assert problems(path) == ["spec.yaml:5:7: key 2024 must be a string (quote it)"]
