"""Every Triton python stub imports the serving core; heavy frameworks there multiply across stubs.

torch alone took 1.3 s per stub: when `t2iguard.profiles` came to import it (reading the UNet's
metadata through safetensors' "pt" framework), launch-to-ready went from about 15 s to 46 s."""

from __future__ import annotations

import subprocess
import sys

#: what `t2iguard/serving.py` and the python models under model_repository/ import, less the stub's own
#: `triton_python_backend_utils`
SERVING_CORE = ("t2iguard.audit", "t2iguard.errors", "t2iguard.pipeline", "t2iguard.policy", "t2iguard.profiles",
                "t2iguard.runners", "t2iguard.specs", "t2iguard.stages", "t2iguard.text", "t2iguard.watermark")


def test_serving_core_imports_no_training_framework():
    code = (f"import sys\nfor m in {SERVING_CORE!r}: __import__(m)\n"
            "print(','.join(sorted({'torch', 'transformers', 'diffusers'} & set(sys.modules))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"the serving core imports {out.stdout.strip()}"
