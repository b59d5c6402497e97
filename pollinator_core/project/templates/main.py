"""Sample job. Pollinator runs it as `cmd source` from project.yaml (python3 main.py).

It runs unchanged in a container, on a Slurm node and as a plain process: everything it needs
comes from PROJECT_DIR, which the executor points at this project's synced cfs/ directory.
"""

import os
import socket
from pathlib import Path

# Run directly (python3 cfs/src/main.py) it falls back to the cfs/ folder it was copied from.
project_dir = Path(os.environ.get("PROJECT_DIR") or Path(__file__).resolve().parent.parent)

print("Hostname:", socket.gethostname())
print("PROJECT_DIR:", project_dir)
print("COLONIES_PROCESS_ID:", os.environ.get("COLONIES_PROCESS_ID", "(not set)"))

hello = (project_dir / "data" / "hello.txt").read_text().strip()
print("data/hello.txt says:", hello)

result_dir = project_dir / "result"
result_dir.mkdir(parents=True, exist_ok=True)
result = result_dir / "result.txt"
result.write_text(hello + " (from " + socket.gethostname() + ")\n")
# Relative to PROJECT_DIR: on the executor that directory is temporary; Pollinator brings
# result/ back to cfs/result/ of your project.
print("Wrote", result.relative_to(project_dir), flush=True)
