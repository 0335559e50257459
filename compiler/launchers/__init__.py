"""Programs shipped inside target folders that run on a cluster, not in the compiler (ray_launcher.py imports ray).

Read as files by the targets that ship them (targets/ray.py); never imported by the compiler."""
