"""What Overlord emits: ``UnderwaterUserEvent`` (versioned JSON over ZMQ) and audit files.

- :mod:`overlord.outputs.events`: the event, its wire codec and the builder from the math;
- :mod:`overlord.outputs.publisher`: :class:`EventPublisher`, PUSH or PUB over ZMQ;
- :mod:`overlord.outputs.traces`: ``hf-traces/<trace_id>.txt`` and the initial-scan results;
- :mod:`overlord.outputs.listen`: the ``overlord listen`` consumer command.

Wire format and delivery semantics: docs/events.md.
"""

from overlord.outputs.events import (
    SCHEMA_VERSION,
    AssetPrice,
    BlockContext,
    EventDecodeError,
    LiquidationPlan,
    PendingTrigger,
    UnderwaterUserEvent,
    UserAccountData,
    decode_event,
    encode_event,
    event_from,
    event_id_for,
)
from overlord.outputs.publisher import (
    EndpointError,
    EventPublisher,
    PublisherClosedError,
    PublisherError,
    SocketKind,
    default_endpoint,
)
from overlord.outputs.traces import (
    OutputDirError,
    new_trace_id,
    write_init_results,
    write_trace,
)

__all__ = [
    "SCHEMA_VERSION",
    "AssetPrice",
    "BlockContext",
    "EndpointError",
    "EventDecodeError",
    "EventPublisher",
    "LiquidationPlan",
    "OutputDirError",
    "PendingTrigger",
    "PublisherClosedError",
    "PublisherError",
    "SocketKind",
    "UnderwaterUserEvent",
    "UserAccountData",
    "decode_event",
    "default_endpoint",
    "encode_event",
    "event_from",
    "event_id_for",
    "new_trace_id",
    "write_init_results",
    "write_trace",
]
