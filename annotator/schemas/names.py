"""Name classes (proper, descriptor, relative, group) and name forms, for the CPM and the prompts.

The classifier lives in `evaluation.names`, which scores names by the same rules; it is re-exported here
because the answer schemas are what `profiles_db` may import from the annotator (DESIGN §3), so one piece
of code decides what a proper name is for the memory and for the metrics alike.
"""

from evaluation.names import NAME_CLASSES, NameClass, NameInfo, analyse_name, name_class

__all__ = ["NAME_CLASSES", "NameClass", "NameInfo", "analyse_name", "name_class"]
