"""`python -m tfdenoise.predict DIR`: the same command as `tfdenoise predict DIR`."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet TF's C++ start-up, as the CLI does

from tfdenoise.cli import predict_main  # noqa: E402

predict_main()
