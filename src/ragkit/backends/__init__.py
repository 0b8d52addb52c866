"""Knowledge-base backends: where chunks, vectors, keyword index, record and lock live."""
