"""A record's partition is the one the Java client's default partitioner picks for its key."""

from uuid import uuid4

from aiokafka.partitioner import DefaultPartitioner

from chassis.kafka.producing import partition_for


def test_a_key_goes_to_the_partition_of_the_default_partitioner_every_time() -> None:
    java = DefaultPartitioner()
    keys = [str(uuid4()).encode() for _ in range(300)] + [b"", b"a", b"ab", b"abc", b"abcd"]
    for count in (1, 3, 6, 12):
        partitions = list(range(count))
        for key in keys * 2:  # the second time from the cache of hashes
            assert partition_for(key, partitions) == java(key, partitions, partitions)
