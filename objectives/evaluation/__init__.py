"""Scoring on the MTEB subset: task folders as data, mteb tasks built from them, scoring, item evidence, the reference row."""
