"""What a batch prediction run reports: one text for people (CLI), one for the KFP dashboard (Markdown)."""

from __future__ import annotations


def _facts(manifest: dict) -> list[tuple[str, str]]:
    model, source = manifest["model"], manifest["input"]
    seconds = manifest["seconds"]
    rate = f", {manifest['rows'] / seconds:,.0f} rows/s" if seconds > 0 else ""
    return [
        ("rows", f"{manifest['rows']:,} in {len(manifest['parts'])} part(s), scored in {seconds:,.1f} s{rate}"),
        ("model", f"{model['name']} v{model['version']} ({model['digest'][:19]}...), class at probability >= "
                  f"{manifest['threshold']:g}"),
        ("input", f"{source['uri']} ({len(source['files'])} file(s), {source['fingerprint'][:19]}...)"),
        ("scored_at", manifest["scored_at"]),
        ("kept columns", ", ".join(manifest["keep"]) or "none"),
    ]


def summary(output_uri: str, manifest: dict, already_complete: bool | None) -> str:
    """``already_complete``: True, False (this run committed it), or None (not known: what the output holds)."""
    head = {True: f"already complete: {output_uri} holds these predictions; nothing to do",
            False: f"committed {output_uri}/_MANIFEST.json",
            None: f"predictions: {output_uri}/_MANIFEST.json"}[already_complete]
    width = max(len(label) for label, _ in _facts(manifest))
    return "\n".join([head, *(f"  {label:>{width}}  {value}" for label, value in _facts(manifest))])


def describe_output(output_uri: str) -> list[str]:
    """What an output prefix holds, from its manifest (after a pipeline run, for people)."""
    from mlops.batch.output import read_manifest

    manifest = read_manifest(output_uri)
    if manifest is None:
        return [f"{output_uri} holds no committed batch predictions"]
    return summary(output_uri.rstrip("/"), manifest, None).splitlines()


def markdown(output_uri: str, manifest: dict, already_complete: bool) -> str:
    state = "already complete (nothing scored)" if already_complete else "committed"
    lines = [f"## Batch predictions: {state}", "", f"Output: `{output_uri}` (read it through `_MANIFEST.json`, "
             "e.g. `mlops.batch.read_predictions`)", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in _facts(manifest)]
    return "\n".join(lines) + "\n"


def plan_markdown(job) -> str:
    """The dashboard's view of a plan: what will be scored, in which shards."""
    lines = [f"## Batch prediction plan: {job.rows:,} rows in {len(job.shards)} shard(s)", "",
             f"Model `{job.model.name}` v{job.model.version}, input `{job.input_uri}` ({len(job.files)} file(s)), "
             f"output `{job.output_uri}`, run `{job.attempt}`.", "", "| shard | rows | row groups |", "|---:|---:|---|"]
    for shard in job.shards:
        where = "; ".join(f"{job.files[p.file].uri.rsplit('/', 1)[-1]} {p.row_groups[0]}-{p.row_groups[-1]}"
                          for p in shard.pieces)
        lines.append(f"| {shard.index} | {shard.rows:,} | {where} |")
    return "\n".join(lines) + "\n"
