# The reference (man pages, HTML): filled in by the next commit.
set(FUT_DOCS OFF)
