"""Isolation of a student's Jupyter kernel (Linux namespaces, uid nobody, limits).

    policy   what a kernel may use and see: limits, the mount plan, whether isolation works
    kernel   the kernelspec and the launcher that applies a policy (run with -m)
    cleanup  reaping what a killed grader left behind: kernels, cgroups, scratch folders
    scratch  a student's scratch folder (a tmpfs) and the kernel's policy environment
    environ  the one helper that changes this process's environment for a child's start

The grader (trusted) stays outside and talks to the kernel over Unix sockets in
the student's scratch folder.
"""
