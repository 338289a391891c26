"""The proxy transform of a video without a full analysis pass (a resume that must cut a proxy again, or a
single `make_proxy` call): a few frames decoded at evenly spaced seek points tell interlacing, pixel aspect and
letterbox bars well enough."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

from annotator.media import MediaError
from workers.splitter.decode import analysis_size, letterbox, tall_height
from workers.splitter.features import FeatureBuilder
from workers.splitter.proxy import ProxyTransform
from workers.splitter.settings import ProxySettings


def sample_transform(
    source: Path, settings: ProxySettings, *, points: int = 12, frames: int = 3, width: int = 128
) -> ProxyTransform:
    try:
        with av.open(str(source)) as container:
            video = container.streams.video[0]
            video.thread_type = "AUTO"
            ctx = video.codec_context
            sar = Fraction(video.sample_aspect_ratio or ctx.sample_aspect_ratio or 1) or Fraction(1)
            size = analysis_size(ctx.width, ctx.height, sar, width)
            builder = FeatureBuilder(settings.bar_luma, (size[0], tall_height(ctx.height)), bar_stride=1)
            duration = (container.duration or 0) / av.time_base
            interlaced = rotation = 0
            for k in range(points):
                if duration > 0 and video.time_base:
                    target = duration * (k + 0.5) / points
                    container.seek(int(target / video.time_base), stream=video)
                for i, frame in enumerate(container.decode(video)):
                    if i >= frames:
                        break
                    rotation = rotation or int(getattr(frame, "rotation", 0) or 0)
                    interlaced += bool(frame.interlaced_frame)
                    builder.add_frame(0.0, frame)
                if duration <= 0:
                    break
    except (av.error.FFmpegError, OSError, IndexError) as exc:
        raise MediaError(f"{source}: cannot be sampled for its proxy ({type(exc).__name__}: {exc})") from None
    features = builder.build()
    deinterlace = settings.deinterlace == "always" or (
        settings.deinterlace == "auto" and interlaced > 0.1 * max(1, len(features))
    )
    crop = letterbox(features, ctx.width, ctx.height, settings) if len(features) and not rotation else None
    return ProxyTransform(deinterlace=deinterlace, crop=crop, sar=sar)
