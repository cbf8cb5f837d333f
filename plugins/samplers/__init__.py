"""Built-in samplers: how a split becomes batches, and what happens to hidden state."""
from seqgen import hookimpl

from . import bucket, random_windows, sequential


@hookimpl
def register_samplers(register):
    register("sequential", sequential.SequentialSampler, schema=sequential.SCHEMA,
             description=sequential.DESCRIPTION, accepts="stream")
    register("random", random_windows.RandomSampler, schema=random_windows.SCHEMA,
             description=random_windows.DESCRIPTION, accepts="stream")
    register("bucket", bucket.BucketSampler, schema=bucket.SCHEMA,
             description=bucket.DESCRIPTION, accepts=("sequences", "pairs"))
