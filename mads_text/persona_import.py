"""Personas from external profile records (CRM exports, survey panels) through a field-mapping file.

A mapping file (YAML) says which source column feeds which persona field, how to
convert it (type, value map, numeric bins) and how to label it in the prompt.
It is validated twice: against the model below, and against the source's header
(an unknown column is an error naming the column and the mapping field).

```yaml
source: {format: csv, id_column: B3, filter: {B4: "1"}}
fields:
  gender: {column: sex.x, label: Gender, map: {Male: Male, Female: Female}}
  age: {column: age.x, type: int, label: Age}
  extraversion:
    column: extrovert.x
    type: float
    label: Extraversion (Big Five, 1-5)
    bins: {edges: [2.67, 3.67], labels: [low, medium, high]}
outcome: {column: B6, type: float}     # optional: the person's real decision, kept for fidelity checks
```
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .personas import Persona


class MappingError(ValueError):
    pass


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Bins(_Strict):
    edges: list[float] = Field(min_length=1)
    labels: list[str]

    @model_validator(mode="after")
    def _shape(self):
        if len(self.labels) != len(self.edges) + 1:
            raise ValueError(f"{len(self.edges)} edges need {len(self.edges) + 1} labels, got {len(self.labels)}")
        if sorted(self.edges) != self.edges:
            raise ValueError("edges must be increasing")
        return self


class FieldMap(_Strict):
    column: str
    type: Literal["str", "int", "float", "bool"] = "str"
    label: str | None = None
    map: dict[str, Any] | None = Field(None, description="source value -> persona value; unmapped values are an error")
    bins: Bins | None = Field(None, description="numeric value -> band label; the number is kept as <field>_value")
    missing: Any = Field(None, description="value used when the cell is empty; empty cells are errors when unset")
    business: bool = Field(False, description="render under business attributes instead of the profile")


class SourceSpec(_Strict):
    format: Literal["csv"] = "csv"
    id_column: str
    filter: dict[str, str] = Field(default_factory=dict, description="keep rows whose column equals the value")


class OutcomeSpec(_Strict):
    column: str
    type: Literal["float", "int", "bool", "str"] = "float"


class PersonaMapping(_Strict):
    source: SourceSpec
    fields: dict[str, FieldMap] = Field(min_length=1)
    outcome: OutcomeSpec | None = None
    id_prefix: str = "imported"
    group: str = "import"


def load_mapping(path: str | Path) -> PersonaMapping:
    p = Path(path)
    if not p.exists():
        raise MappingError(f"{p}: mapping file not found")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise MappingError(f"{p}: not valid YAML: {e}") from None
    try:
        return PersonaMapping.model_validate(data)
    except ValidationError as e:
        msgs = [f"{p}: field '{'.'.join(map(str, err['loc']))}': {err['msg']}" for err in e.errors()]
        raise MappingError("invalid persona mapping\n  " + "\n  ".join(msgs)) from None


def _convert(raw: str, fm: FieldMap, where: str) -> Any:
    if raw.strip() == "":
        if fm.missing is not None:
            return fm.missing
        raise MappingError(f"{where}: empty value in column '{fm.column}' (set `missing:` to allow it)")
    if fm.map is not None:
        if raw not in fm.map:
            raise MappingError(f"{where}: value {raw!r} of column '{fm.column}' is not in the field's map")
        return fm.map[raw]
    try:
        if fm.type == "int":
            return int(float(raw))
        if fm.type == "float":
            return float(raw)
        if fm.type == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "y"):
                return True
            if low in ("0", "false", "no", "n"):
                return False
            raise ValueError(raw)
    except ValueError:
        raise MappingError(f"{where}: column '{fm.column}' value {raw!r} is not a {fm.type}") from None
    return raw


def _bin(value: float, bins: Bins) -> str:
    for edge, label in zip(bins.edges, bins.labels):
        if value < edge:
            return label
    return bins.labels[-1]


def import_personas(
    mapping: PersonaMapping, table: str | Path, scenario: str, limit: int | None = None, seed: int = 0
) -> list[Persona]:
    """Read the source table and build one Persona per kept row (in file order)."""
    path = Path(table)
    if not path.exists():
        raise MappingError(f"{path}: source table not found")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = set(reader.fieldnames or [])
        needed = {"source.id_column": mapping.source.id_column}
        needed.update({f"source.filter.{c}": c for c in mapping.source.filter})
        needed.update({f"fields.{k}.column": fm.column for k, fm in mapping.fields.items()})
        if mapping.outcome:
            needed["outcome.column"] = mapping.outcome.column
        missing = [f"column '{col}' (from {where})" for where, col in needed.items() if col not in header]
        if missing:
            raise MappingError(f"{path}: the mapping names columns the table does not have: " + "; ".join(missing))
        personas: list[Persona] = []
        for lineno, row in enumerate(reader, 2):
            if any(row[c] != v for c, v in mapping.source.filter.items()):
                continue
            where = f"{path}:{lineno}"
            fields: dict[str, Any] = {}
            labels: dict[str, str] = {}
            profile, business = [], []
            for key, fm in mapping.fields.items():
                value = _convert(row[fm.column], fm, where)
                label = fm.label or key.replace("_", " ").title()
                if fm.bins is not None:
                    if not isinstance(value, (int, float)):
                        raise MappingError(f"{where}: bins need a numeric type for field '{key}'")
                    fields[f"{key}_value"] = value
                    value = _bin(float(value), fm.bins)
                fields[key] = value
                labels[key] = label
                (business if fm.business else profile).append(key)
            if "name" not in fields:
                fields["name"] = _name_for(fields, len(personas) + seed)
                labels["name"] = "Name"
                profile.insert(0, "name")
            source_id = row[mapping.source.id_column]
            if mapping.outcome is not None:
                fields["_real_outcome"] = _convert(row[mapping.outcome.column], FieldMap(column=mapping.outcome.column, type=mapping.outcome.type), where)
            personas.append(
                Persona(
                    id=f"{mapping.id_prefix}-{source_id}",
                    index=len(personas),
                    scenario=scenario,
                    group=mapping.group,
                    seed=seed,
                    fields=fields,
                    labels=labels,
                    profile_keys=profile,
                    business_keys=business,
                )
            )
            if limit is not None and len(personas) >= limit:
                break
    if not personas:
        raise MappingError(f"{path}: no rows left after the source filter {mapping.source.filter}")
    return personas


def _name_for(fields: dict[str, Any], i: int) -> str:
    from .personas import NAMES

    pool = NAMES.get(str(fields.get("gender", ""))) or NAMES["Male"] + NAMES["Female"]
    return pool[i % len(pool)]
