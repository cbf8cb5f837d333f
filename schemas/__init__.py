"""JSON Schemas shipped as package data (import name `seqgen.schemas`)."""
