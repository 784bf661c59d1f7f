"""The rule probe (issue 11): does task diversity teach a model to follow instructions it has never seen?

``suite`` generates seeded exact-answer string rules with Chinese phrasings and their splits,
``base`` builds a small character-level Bloom base, ``experiment`` trains mixtures of varying rule
diversity under each constraint arm and scores them by exact match.
"""
