"""Use cases: each public function is one use case and commits (or rolls back) once."""
