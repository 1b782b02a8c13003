#!/usr/bin/env python3
"""An OTLP/HTTP profiles receiver for bpfprof's push tests.

Decodes each POST as an ExportProfilesServiceRequest with the official
classes (PyPI opentelemetry-proto 1.45.x: profiles v1development of proto
v1.10.0) and logs one JSON line for it:

  path, headers (content-type, the development version, authorization,
  content-encoding, user-agent, any x- header), status, body_size,
  errors: what breaks the dictionary's rules (index 0 of each table the
  zero entry, every index in range, samples with a stack and one value),
  mappings: [{filename, memory_start, memory_limit, file_offset, attributes}],
  resources: [{attributes, profiles: [{scope, scope_version, sample_type
    "type/unit", period_type, period, time_unix_nano, duration_nano,
    profile_id (hex), attributes, samples: [{stack (function names, root
    first, inlined functions in call order), values, attributes}]}]}]

A wrong Content-Type, a missing or wrong OTLP-Profiles-Development-Version
or a body that does not decode is answered 400 and logged with `error`.
Options: see receiver_common.py.
"""

import receiver_common
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.profiles.v1development import (
    profiles_service_pb2 as service,
)

CONTENT_TYPE = "application/x-protobuf"
DEVELOPMENT_VERSION = "1"


class Decoder:
    """Resolves a request's indices through its dictionary, noting every
    index out of range (and references to a table's zero entry) in
    `errors` instead of failing."""

    def __init__(self, request):
        self.dictionary = request.dictionary
        self.errors = []
        self.check_zero_entries()

    def check_zero_entries(self):
        d = self.dictionary
        if len(d.string_table) == 0 or d.string_table[0] != "":
            self.errors.append('string_table[0] is not ""')
        for table in [
            "mapping_table",
            "location_table",
            "function_table",
            "attribute_table",
            "stack_table",
        ]:
            entries = getattr(d, table)
            if len(entries) == 0:
                self.errors.append(f"{table} is empty: its [0] must be the zero entry")
            elif entries[0].ByteSize() != 0:
                self.errors.append(f"{table}[0] is not the zero entry: {entries[0]}")
        # Nothing here uses links: the table may be left out, but not wrong.
        if len(d.link_table) > 0 and d.link_table[0].ByteSize() != 0:
            self.errors.append("link_table[0] is not the zero entry")

    def entry(self, table, index, where, zero_allowed=True):
        entries = getattr(self.dictionary, table)
        if not 0 <= index < len(entries):
            self.errors.append(f"{where}: {table} index {index} out of range ({len(entries)})")
            return None
        if index == 0 and not zero_allowed:
            self.errors.append(f"{where}: refers to {table}[0], the zero entry")
        return entries[index]

    def string(self, index, where):
        value = self.entry("string_table", index, where)
        return "" if value is None else value

    def any_value(self, value, where):
        kind = value.WhichOneof("value")
        if kind is None:
            return None
        if kind == "string_value_strindex":
            return self.string(value.string_value_strindex, where)
        if kind == "bytes_value":
            return value.bytes_value.hex()
        if kind == "array_value":
            return [self.any_value(v, where) for v in value.array_value.values]
        if kind == "kvlist_value":
            return self.key_values(value.kvlist_value.values, where)
        return getattr(value, kind)

    def key_values(self, key_values, where):
        """Resource-style attributes (KeyValue) as a dict."""
        out = {}
        for kv in key_values:
            key = kv.key or self.string(kv.key_strindex, where)
            if key in out:
                self.errors.append(f"{where}: attribute {key} twice")
            out[key] = self.any_value(kv.value, f"{where} {key}")
        return out

    def attributes(self, indices, where):
        """attribute_table entries as a dict (ints stay ints)."""
        out = {}
        for index in indices:
            entry = self.entry("attribute_table", index, where, zero_allowed=False)
            if entry is None:
                continue
            key = self.string(entry.key_strindex, where)
            if not key:
                self.errors.append(f"{where}: attribute_table[{index}] has no key")
            if key in out:
                self.errors.append(f"{where}: attribute {key} twice")
            out[key] = self.any_value(entry.value, f"{where} {key}")
        return out

    def value_type(self, value_type, where):
        kind = self.string(value_type.type_strindex, where)
        unit = self.string(value_type.unit_strindex, where)
        return f"{kind}/{unit}"

    def stack(self, index, where):
        """Function names root first: locations come leaf first and a
        location's lines innermost first."""
        stack = self.entry("stack_table", index, where, zero_allowed=False)
        names = []
        for location_index in reversed(stack.location_indices if stack else []):
            location = self.entry("location_table", location_index, where, zero_allowed=False)
            if location is None:
                continue
            self.entry("mapping_table", location.mapping_index, f"{where} location")
            self.attributes(location.attribute_indices, f"{where} location")
            if not location.lines:
                names.append(f"0x{location.address:x}")
            for line in reversed(location.lines):
                names.append(self.function_name(line.function_index, where))
        return names

    def function_name(self, index, where):
        function = self.entry("function_table", index, where, zero_allowed=False)
        if function is None:
            return "?"
        self.string(function.system_name_strindex, f"{where} function")
        self.string(function.filename_strindex, f"{where} function")
        return self.string(function.name_strindex, f"{where} function")

    def sample(self, sample, where):
        if len(sample.values) != 1 and not sample.timestamps_unix_nano:
            self.errors.append(f"{where}: {len(sample.values)} values for one sample type")
        if any(v < 0 for v in sample.values):
            self.errors.append(f"{where}: a negative value {list(sample.values)}")
        if sample.link_index:
            self.entry("link_table", sample.link_index, where)
        out = {
            "stack": self.stack(sample.stack_index, where),
            "values": list(sample.values),
            "attributes": self.attributes(sample.attribute_indices, where),
        }
        if sample.timestamps_unix_nano:
            out["timestamps_unix_nano"] = list(sample.timestamps_unix_nano)
        return out

    def profile(self, scope, profile, where):
        return {
            "scope": scope.name,
            "scope_version": scope.version,
            "sample_type": self.value_type(profile.sample_type, where),
            "period_type": self.value_type(profile.period_type, where),
            "period": profile.period,
            "time_unix_nano": profile.time_unix_nano,
            "duration_nano": profile.duration_nano,
            "profile_id": profile.profile_id.hex(),
            "attributes": self.attributes(profile.attribute_indices, where),
            "samples": [
                self.sample(s, f"{where} sample {i}") for i, s in enumerate(profile.samples)
            ],
        }

    def mappings(self):
        out = []
        for i, mapping in enumerate(self.dictionary.mapping_table[1:], start=1):
            where = f"mapping_table[{i}]"
            out.append(
                {
                    "filename": self.string(mapping.filename_strindex, where),
                    "memory_start": mapping.memory_start,
                    "memory_limit": mapping.memory_limit,
                    "file_offset": mapping.file_offset,
                    "attributes": self.attributes(mapping.attribute_indices, where),
                }
            )
        return out


def summarize(request):
    decoder = Decoder(request)
    resources = []
    for r, resource_profiles in enumerate(request.resource_profiles):
        where = f"resource {r}"
        profiles = []
        for s, scope_profiles in enumerate(resource_profiles.scope_profiles):
            for p, profile in enumerate(scope_profiles.profiles):
                profiles.append(
                    decoder.profile(scope_profiles.scope, profile, f"{where} scope {s} profile {p}")
                )
        resources.append(
            {
                "attributes": decoder.key_values(resource_profiles.resource.attributes, where),
                "profiles": profiles,
            }
        )
    mappings = decoder.mappings()
    return {"resources": resources, "mappings": mappings, "errors": decoder.errors}


def decode(handler, body, record):
    def reject(error):
        record["error"] = error
        return 400, "text/plain", error.encode()

    content_type = handler.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != CONTENT_TYPE:
        return reject(f"Content-Type {content_type!r}, not {CONTENT_TYPE}")
    version = handler.headers.get("OTLP-Profiles-Development-Version")
    if version != DEVELOPMENT_VERSION:
        return reject(f"OTLP-Profiles-Development-Version {version!r}, not {DEVELOPMENT_VERSION}")
    try:
        body = receiver_common.gunzip_if_encoded(handler.headers, body)
        request = service.ExportProfilesServiceRequest.FromString(body)
    except (DecodeError, OSError, EOFError) as e:
        return reject(f"not an ExportProfilesServiceRequest: {e}")
    record.update(summarize(request))
    answer = service.ExportProfilesServiceResponse().SerializeToString()
    return 200, CONTENT_TYPE, answer


if __name__ == "__main__":
    receiver_common.serve(receiver_common.parse_args(__doc__.splitlines()[0]), decode)
