"""What every camera backend offers, apart from the backends and the choice between them
(edge/cameras.py chooses, edge/picamera2_backend.py and OpenCVCamera read), so a backend imports
this and never the module that chooses it."""

from __future__ import annotations

import numpy as np


class Camera:
    """What every backend offers: read() an RGB frame, close(), and a one-line description."""

    name = "camera"
    description = "camera"

    def read(self) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
