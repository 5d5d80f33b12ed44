"""The contract: what every layer agrees on (taxonomy, model specs and tensor names, profiles, policy, errors,
report). Pure data and rules; imports nothing else of t2iguard."""
