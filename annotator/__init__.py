"""Model-facing side of v2s: answer schemas, the model gateway, the annotation stages and the simulator."""

ENGINE_VERSION = "0.1.0"
