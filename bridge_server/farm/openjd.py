"""Open Job Description job templates (specification jobtemplate-2023-09) for a farm job.

Two templates per job:
- chunked: one step whose task parameter ``Frame`` is ``CHUNK[INT]`` over the ``Frames`` job
  parameter with a CONTIGUOUS range constraint (the TASK_CHUNKING extension, openjd-model 0.13),
  so the runner decides the chunks, and may move their boundaries (adaptive chunking);
- fallback: no extension; one task per chunk start, the chunks worked out here
  (``rvm_engine.chunks.chunk_starts``) for each contiguous range of the frames.
Both run the same task, ``rvm-bridge render ... --chunk``, so a chunk pre-rolls the same way
wherever its boundaries fall. Job parameters carry what a wrangler changes at submission; the paths have no defaults (OpenJD
allows only relative ones), so their values are written beside the templates (``path_values``).
"""

from __future__ import annotations

from typing import Any, Dict, List

from .job import OUTPUTS, FarmJob

SPECIFICATION = "jobtemplate-2023-09"
EXTENSION = "TASK_CHUNKING"
_PARAMETER = {"input": "InputPlates", "alpha": "AlphaPlates", "foreground": "ForegroundPlates",
              "rgba": "RgbaPlates", "shot_start": "ShotStart", "preroll": "PreRoll", "variant": "Variant",
              "downsample_ratio": "DownsampleRatio", "colour_space": "ColourSpace", "device": "Device"}


def _parameters(job: FarmJob, chunked: bool) -> List[Dict[str, Any]]:
    from ..client.parameters import CLIP_PARAMETERS

    variants = next(p.choices for p in CLIP_PARAMETERS if p.name == "variant")
    values = job.values()
    params: List[Dict[str, Any]] = [
        {"name": "InputPlates", "type": "PATH", "description": "Source plate sequence (shot.####.exr)"}]
    for name in OUTPUTS:
        if name in job.outputs:
            params.append({"name": _PARAMETER[name], "type": "PATH",
                           "description": f"Output pattern of the {name} plates"})
    if chunked:
        params += [
            {"name": "Frames", "type": "STRING", "default": job.frames_text, "minLength": 1,
             "description": "Frames to matte (1001-1100; gaps split the chunks)"},
            {"name": "ChunkSize", "type": "INT", "default": job.chunk, "minValue": 1,
             "description": "Frames per task (the runner may adapt it)"}]
    params += [
        {"name": "ShotStart", "type": "INT", "default": job.shot_start,
         "description": "The shot's first frame: no chunk pre-rolls before it"},
        {"name": "PreRoll", "type": "INT", "default": job.preroll, "minValue": 0,
         "description": "Frames run, not written, before each chunk so its state has settled"},
        {"name": "Variant", "type": "STRING", "default": job.variant, "allowedValues": list(variants)},
        {"name": "DownsampleRatio", "type": "STRING", "default": values["downsample_ratio"],
         "description": "Downsample ratio, or auto"},
        {"name": "ColourSpace", "type": "STRING", "default": values["colour_space"],
         "description": "OCIO colour space of the source plates; empty = the plates' default"},
        {"name": "Device", "type": "STRING", "default": job.device, "description": "cpu or cuda[:N]"}]
    return params


def _references(job: FarmJob) -> Dict[str, str]:
    names = ["input", "shot_start", "preroll", "variant", "downsample_ratio", "colour_space", "device"]
    names += [name for name in OUTPUTS if name in job.outputs]
    return {name: "{{Param." + _PARAMETER[name] + "}}" for name in names}


def _step(job: FarmJob, name: str, space: Dict[str, Any], frames: str) -> Dict[str, Any]:
    return {"name": name, "parameterSpace": space,
            "script": {"actions": {"onRun": {
                "command": job.command[0],
                "args": job.command[1:] + job.task_arguments(frames, _references(job))}}}}


def chunked_template(job: FarmJob) -> Dict[str, Any]:
    """The template with CHUNK[INT] task parameters (needs a runner with TASK_CHUNKING)."""
    space = {"taskParameterDefinitions": [
        {"name": "Frame", "type": "CHUNK[INT]", "range": "{{Param.Frames}}",
         "chunks": {"defaultTaskCount": "{{Param.ChunkSize}}", "rangeConstraint": "CONTIGUOUS"}}]}
    return {"specificationVersion": SPECIFICATION, "extensions": [EXTENSION], "name": f"rvm-bridge matte {job.name}",
            "parameterDefinitions": _parameters(job, chunked=True),
            "steps": [_step(job, "Matte", space, "{{Task.Param.Frame}}")]}


def fallback_template(job: FarmJob) -> Dict[str, Any]:
    """The template without extensions: one task per chunk start, chunk ends beside them."""
    from rvm_engine.chunks import chunk_starts

    chunks = [c for first, last in job.ranges for c in chunk_starts(first, last, job.chunk)]
    space = {"taskParameterDefinitions": [
        {"name": "ChunkStart", "type": "INT", "range": [a for a, _ in chunks]},
        {"name": "ChunkEnd", "type": "INT", "range": [b for _, b in chunks]}],
        "combination": "(ChunkStart, ChunkEnd)"}
    return {"specificationVersion": SPECIFICATION, "name": f"rvm-bridge matte {job.name}",
            "description": f"Frames {job.frames_text} in chunks of {job.chunk}, fixed when the job was written.",
            "parameterDefinitions": _parameters(job, chunked=False),
            "steps": [_step(job, "Matte", space, "{{Task.Param.ChunkStart}}-{{Task.Param.ChunkEnd}}")]}


def path_values(job: FarmJob) -> Dict[str, str]:
    """The PATH job parameters' values (OpenJD allows no absolute default paths), for
    ``openjd run -p file://NAME.params.json`` or a submitter's parameter values."""
    values = {"InputPlates": job.input}
    values.update({_PARAMETER[name]: pattern for name, pattern in job.outputs.items()})
    return values


def validate(template: Dict[str, Any]) -> None:
    """Decode the template with openjd-model, as ``openjd check`` does; raises its error."""
    from openjd.model import decode_job_template

    decode_job_template(template=template, supported_extensions=template.get("extensions", []))


def to_yaml(template: Dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump(template, sort_keys=False, width=1000)
