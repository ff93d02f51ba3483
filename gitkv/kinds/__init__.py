"""One module per family of Consul objects gitkv manages whole (`gitkv.objects.ApiObject`).

Each module holds both directions next to each other, so `plan` and a later `import` share
them: `..._from_api(live JSON) -> ApiObject` (the canonical value a spec would produce) and
`..._body(ApiObject) -> dict` (what `/v1` is sent), plus what the kind's spec value becomes.
"""
