"""Measurement core: benchmark_app's methodology on the OpenVINO runtime.

No web imports here. The public surface:
- `run_benchmark(spec, on_progress=None, cancel=None) -> BenchmarkResult` (runner.py)
- `describe_model(path) -> ModelDescription` (model.py)
- `list_devices() -> list[DeviceInfo]` (devices.py)
- `verify_image(path)` (inputs.py), `write_sample_models(dir)` (samples.py)
"""
