"""Subjects: syntax and pattern algebra (:mod:`.tokens`) and the subject index (:mod:`.sublist`).

Sans-IO: nothing in this package imports asyncio, socket, os or time.
"""

from natsd.subjects.sublist import (
    EMPTY_RESULT,
    InvalidSubjectError,
    SubLike,
    Sublist,
    SublistResult,
    Subscription,
)
from natsd.subjects.tokens import (
    num_tokens,
    subject_is_subset,
    subject_matches,
    subjects_intersect,
    tokenize,
    valid_literal_subject,
    valid_queue,
    valid_subject,
)

__all__ = [
    "EMPTY_RESULT",
    "InvalidSubjectError",
    "SubLike",
    "Sublist",
    "SublistResult",
    "Subscription",
    "num_tokens",
    "subject_is_subset",
    "subject_matches",
    "subjects_intersect",
    "tokenize",
    "valid_literal_subject",
    "valid_queue",
    "valid_subject",
]
