"""Isolation of a student's Jupyter kernel (Linux namespaces, uid nobody, limits).

    policy   what a kernel may use and see: limits, the mount plan, whether isolation works
    kernel   the kernelspec and the launcher that applies a policy (run with -m)
    cleanup  reaping what a killed grader left behind: kernels, cgroups, scratch folders

The grader (trusted) stays outside and talks to the kernel over Unix sockets in
the student's scratch folder.
"""
