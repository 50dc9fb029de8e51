"""Reading artifacts and the binaries in them, without loading or executing anything."""

# Bumped whenever a reader changes what it concludes, so cached inspections are redone.
READER_REVISION = 17
