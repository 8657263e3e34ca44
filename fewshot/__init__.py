"""The few-shot method: heads (``model_fs``), batched episode fitting, feature encoding and
cache, and the run of ``main-fsl.py``. See docs/fewshot.md."""
