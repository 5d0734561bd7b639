"""Read a config file with the format's standard Python parser and print its
top-level values as JSON: the independent reader the tests compare against."""
import json
import sys
import tomllib

import dotenv
import yaml

path, fmt = sys.argv[1], sys.argv[2]
if fmt == "yaml":
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
elif fmt == "json":
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
elif fmt == "toml":
    with open(path, "rb") as f:
        data = tomllib.load(f)
elif fmt == "dotenv":
    data = dict(dotenv.dotenv_values(path))
else:
    raise SystemExit(f"unknown format {fmt}")
json.dump(data, sys.stdout, ensure_ascii=True)
