"""``python -m datasets.fewshot_splits``: rewrite the shipped base-class lists from the rule."""
from datasets.fewshot_splits import write_shipped

write_shipped()
