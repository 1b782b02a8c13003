#!/usr/bin/env python3
"""A Pyroscope /ingest receiver for bpfprof's push tests.

Logs one JSON line per POST: path, headers (content-type, authorization,
content-encoding, user-agent, any x- header), status, body_size, query (each
parameter's value, a list when given more than once), app and labels (the
`name` parameter split: `app{k=v,...}`), body_file (the body as sent, saved
beside --out) and errors: a path not ending in /ingest, a Content-Type
other than application/octet-stream, a body that is not gzip, a malformed
name. A request with errors is answered 400.
Options: see receiver_common.py.
"""

import gzip
import itertools
import os
import threading
from urllib.parse import parse_qs, urlsplit

import receiver_common

CONTENT_TYPE = "application/octet-stream"

_numbers = itertools.count()
_numbers_lock = threading.Lock()


def split_name(name, errors):
    """`app{k=v,k2=v2}` as ("app", {"k": "v", "k2": "v2"})."""
    if "{" not in name:
        return name, {}
    app, rest = name.split("{", 1)
    if not rest.endswith("}"):
        errors.append(f"name {name!r}: no closing brace")
        return app, {}
    labels = {}
    for pair in filter(None, rest[:-1].split(",")):
        key, equals, value = pair.partition("=")
        if not equals or not key:
            errors.append(f"name {name!r}: label {pair!r} is not k=v")
            continue
        if key in labels:
            errors.append(f"name {name!r}: label {key} twice")
        labels[key] = value
    return app, labels


def save_body(out, body):
    with _numbers_lock:
        number = next(_numbers)
    stem = os.path.splitext(os.path.abspath(out))[0]
    path = f"{stem}-{os.getpid()}-{number:04}.pprof.gz"
    with open(path, "wb") as f:
        f.write(body)
    return path


def decode(handler, body, record):
    errors = []
    url = urlsplit(handler.path)
    if not url.path.endswith("/ingest"):
        errors.append(f"path {url.path!r} does not end in /ingest")
    query = parse_qs(url.query, keep_blank_values=True)
    record["query"] = {k: v[0] if len(v) == 1 else v for k, v in query.items()}
    if "name" in query:
        record["app"], record["labels"] = split_name(query["name"][0], errors)
    else:
        errors.append("no name parameter")
    content_type = handler.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != CONTENT_TYPE:
        errors.append(f"Content-Type {content_type!r}, not {CONTENT_TYPE}")
    record["body_file"] = save_body(handler.server.log.path, body)
    try:
        gzip.decompress(receiver_common.gunzip_if_encoded(handler.headers, body))
    except (OSError, EOFError) as e:
        errors.append(f"the body is not gzip: {e}")
    record["errors"] = errors
    if errors:
        return 400, "text/plain", "; ".join(errors).encode()
    return 200, "text/plain", b""


if __name__ == "__main__":
    receiver_common.serve(receiver_common.parse_args(__doc__.splitlines()[0]), decode)
