"""`gitkv import`: a spec written from a live cluster.

`gitkv.importer.values` turns what `/v1` returns into the same `gitkv.resources` values the
spec produces (reusing `gitkv.state`'s readers), refusing — with a reason — anything a spec
cannot express exactly; `gitkv.importer.emit` writes those values as spec YAML plus value
files; `gitkv.importer.run` reads the cluster, writes the spec and loads it back to prove the
written spec means exactly what was read.
"""
