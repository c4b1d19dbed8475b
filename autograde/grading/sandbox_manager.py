"""The student's kernel manager: the sandbox's kernel, on IPC sockets in the scratch folder,
with one zmq context the executor destroys, and the launcher's stderr kept for the grader."""

import functools

import zmq.asyncio

from autograde.sandbox.kernel import KERNEL_NAME


class SandboxManager:
    """Mixin of `SandboxedExecute` (before nbclient's): how its kernel is made and started.
    The executor sets `_scratch` and `_launcher_log` first, and destroys `_zmq` after."""

    def start_new_kernel(self, **kwargs):
        """Start the kernel with the launcher's stderr kept (outside the kernel's reach) for
        the message if it fails; the kernel itself lets go of it (sandbox.kernel)."""
        kwargs.setdefault("stderr", self._launcher_log)
        return super().start_new_kernel(**kwargs)

    def create_kernel_manager(self):
        """Kernel manager and client on IPC sockets sharing one zmq context, destroyed with
        LINGER 0 when done (left to the garbage collector, a context holding a message for a
        dead kernel blocked a grading worker forever in term())."""
        self.kernel_name = KERNEL_NAME
        self._zmq = zmq.asyncio.Context()
        self._zmq.setsockopt(zmq.LINGER, 0)  # default for every socket made from it
        km = super().create_kernel_manager()
        km.context = self._zmq
        km.client = functools.partial(type(km).client, km, context=self._zmq)
        km.transport = "ipc"
        km.ip = str(self._scratch / "kernel-ipc")
        km.connection_file = str(self._scratch / "connection.json")
        return km
