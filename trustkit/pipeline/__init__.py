"""The pipeline: one decision about an image (``check``) and the flows built on it (``flows``).

resolve → gather evidence → evaluate policy → ``Verdict``; push, pull and post-push composed once.
Never prints.
"""
