"""SAPO's vetted skills: the bank (SQLite), retrieval, writing candidates, utility and promotion."""
