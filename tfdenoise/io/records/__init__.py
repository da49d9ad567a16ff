"""TFRecord datasets of images, one job per module (the schema apart from the conversion, as in
Model Garden's decoder/parser split):

- `schema`: one example's features, encode/parse, raw pixels with their shape trailer; all the
  tf.data pipeline needs to read a record.
- `folder`: a finished records folder: its manifest, shard paths, record counts, format versions.
- `plan`: the conversion plan, fixed before the first write and stored in OUT/.plan.json.
- `convert`: the converter: sharded writer, worker pool, manifest building, the OUT lock.
- `checks`: type checks of the JSON files read back (plans, manifests).

Imports go one way: checks <- folder <- plan <- convert -> schema.
"""
