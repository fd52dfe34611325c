"""The seams of the engine: parts with real alternatives.

Each interface has a real implementation and (for tests) a fake, and one
conformance suite that runs against every implementation (Flocker's "verified
fake").  Storage-driver methods are *blocking* and are called from the thread
pool; runtime methods return Deferreds and never block the reactor.
"""

from zope.interface import Attribute, Interface


class IStorageDriver(Interface):
    """Layered filesystem storage (overlay2, vfs).

    A *layer* is named by an opaque id (``[0-9a-f-]+``, chosen by the caller)
    and has at most one parent.  Image layers are created, filled once with
    ``apply_diff`` and never changed afterwards; container layers are created on
    top of an image layer and written through ``mount``.

    Every method blocks (file-system work): call it from the thread pool.
    Every method leaves nothing half-made when it raises.
    """

    name = Attribute("Driver name as shown in `docker info` (``overlay2``, ``vfs``).")
    home = Attribute("Directory under which the driver keeps everything.")

    def create(layer_id, parent_id):
        """Create an empty layer on top of ``parent_id`` (``None``: a base layer).

        :raises dockerpy.errors.Conflict: the layer exists.
        :raises dockerpy.errors.NotFound: the parent does not exist.
        """

    def remove(layer_id, later=None):
        """Remove a layer (unmounting it first if needed).  Missing: no error.

        With ``later`` (a list) the layer is gone at once, but its content,
        renamed away, is appended to ``later`` as a path for the caller to
        delete (``shutil.rmtree``) when it suits; what a crash leaves of it
        is swept at the next start."""

    def exists(layer_id):
        """:return: whether the layer exists."""

    def apply_diff(layer_id, stream):
        """Apply a layer tar (uncompressed, a file-like object) to an empty layer.

        Handles whiteouts (``.wh.<name>``, ``.wh..wh..opq``), hard links,
        symlinks, xattrs, ownership, modes and times, and rejects path
        traversal with ``dockerpy.errors.InvalidParameter``.

        :return: the number of bytes of content applied (the layer size).
        """

    def mount(layer_id):
        """Mount the layer with its ancestors; reference counted.

        :return: the path of the merged root file system.
        """

    def unmount(layer_id):
        """Drop one mount reference; unmounts when the count reaches zero."""

    def is_mounted(layer_id):
        """:return: whether the layer's merged root is currently mounted."""

    def changes(layer_id):
        """The layer's changes against its parent, as ``docker diff`` shows them.

        :return: a sorted list of ``(path, kind)``, path absolute inside the
            root, kind 0 modified, 1 added, 2 deleted.
        """

    def diff(layer_id, out):
        """Write the layer's changes against its parent as a layer tar to ``out``
        (a writable binary file), with ``.wh.`` whiteouts for deletions.
        """

    def size(layer_id):
        """:return: bytes used by this layer's own content."""

    def metadata(layer_id):
        """:return: the ``GraphDriver.Data`` dict shown by inspect
        (``LowerDir``, ``MergedDir``, ``UpperDir``, ``WorkDir`` for overlay2).
        """

    def status():
        """:return: list of ``[key, value]`` pairs for ``DriverStatus`` in info."""

    def cleanup():
        """Unmount everything the driver mounted (daemon shutdown or crash recovery)."""


class IRuntime(Interface):
    """An OCI runtime (runc, crun) driven through its command line.

    State lives under the runtime's own root (``--root``), derived from the
    daemon's exec-root so that several daemons never see each other's
    containers.
    """

    name = Attribute("``runc`` or ``crun``.")
    path = Attribute("Absolute path of the runtime binary.")

    def version():
        """:return: Deferred firing with the runtime's version string."""

    def run(container_id, bundle, protocol, stdin, pid_file):
        """Run the container in the foreground as a child of the daemon.

        ``protocol`` is a ``ProcessProtocol`` receiving the container's
        stdout (fd 1) and stderr (fd 2); with ``stdin`` true fd 0 is a pipe the
        protocol's transport writes to, else ``/dev/null``.

        :return: Deferred firing with the container's host pid once the
            container's process is running, or failing (with the runtime's
            message, e.g. executable not found) if it never started.
        """

    def exec(container_id, process_spec, protocol, stdin, pid_file, tty):
        """Run one more process (an OCI ``process`` object, ``process_spec``)
        in the running container, in the foreground as a child of the daemon.

        ``protocol`` gets the process's stdout/stderr (merged on fd 1 with
        ``tty``: the terminal's master comes from the runtime's console
        socket, see :mod:`dockerpy.runtime.console`, and
        ``console.resize(protocol.transport, h, w)`` sizes it) and its exit
        status (the process's); ``stdin`` as for :meth:`run`.

        :return: Deferred firing with the process's host pid once it runs,
            or failing with the runtime's message worded as Docker's
            ``OCI runtime exec failed: ...`` (``exit_code`` 126/127).
        """

    def kill(container_id, signal):
        """Send a signal (a number) to the container's init.  Deferred."""

    def delete(container_id, force):
        """Remove the runtime's state for the container.  Deferred; missing is fine."""

    def settled(container_id):
        """Deferred firing once the runtime is done with a container that
        exited (a runtime may report the exit first and forget the stopped
        container, its cgroup and its state, meanwhile).  Wait for it
        before deleting or running the same container again."""

    def prepare_spec(spec):
        """Adapt a container's spec (a dict, changed in place) to this
        runtime before it is written to the bundle; blocking-free."""

    def oom_killed(container_id):
        """Whether the kernel's OOM killer ended a process of the container's
        last run (``State.OOMKilled``); known once ``settled`` fired."""

    def pause(container_id):
        """Freeze the container (cgroup freezer).  Deferred."""

    def resume(container_id):
        """Thaw a paused container.  Deferred."""

    def pids(container_id):
        """Deferred firing with the host pids of the container's processes."""

    def list():
        """Deferred firing with the ids of the containers the runtime knows."""


class IVolumeDriver(Interface):
    """A volume driver (``local``; plugin drivers later).

    A volume is named (``[a-zA-Z0-9][a-zA-Z0-9_.-]+``) and holds a directory
    that containers mount.  Every method blocks (file-system work, mount(2)):
    call it from the thread pool.  Every method leaves nothing half-made when
    it raises.
    """

    name = Attribute("Driver name as shown in `docker volume ls` (``local``).")
    scope = Attribute("``local`` or ``global``.")

    def create(name, options, labels):
        """Create a volume, or return the existing one of that name.

        :param options: driver options (``DriverOpts``).
        :param labels: user labels.
        :return: the volume's record (a dict, see :meth:`get`).
        :raises dockerpy.errors.InvalidParameter: a bad name or option.
        """

    def get(name):
        """:return: ``{"Name", "Driver", "Mountpoint", "CreatedAt", "Labels",
            "Options", "Scope"}`` for the volume.
        :raises dockerpy.errors.NotFound: no such volume.
        """

    def list():
        """:return: the records of every volume of this driver."""

    def remove(name):
        """Remove the volume and its data.  Missing: NotFound.

        :raises dockerpy.errors.Conflict: the volume is mounted.
        """

    def mount(name, ref):
        """Make the volume's data available for the user ``ref`` (a container id);
        reference counted per ``ref``.

        :return: the host path to bind into the container.
        """

    def unmount(name, ref):
        """Drop ``ref``'s use; the last one unmounts what :meth:`mount` mounted."""

    def size(name):
        """:return: bytes used by the volume's data."""

    def cleanup():
        """Unmount everything the driver mounted (daemon shutdown or crash recovery)."""
