"""The private descriptor pool that holds the Open API message definitions.

The generated ``*_pb2`` modules register their files here rather than in
protobuf's process-wide default pool. The official ``ctrader_open_api``
package registers files and messages with the very same names in the default
pool; keeping ours apart lets both be imported in one process (users migrate
gradually) while the bytes on the wire stay identical.
"""

from google.protobuf import descriptor_pool

#: Descriptor pool of the four Open API ``.proto`` files (release 91).
POOL = descriptor_pool.DescriptorPool()
