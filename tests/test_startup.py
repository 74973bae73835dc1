"""helpers.startup: TensorFlow imported without its C++ start-up lines."""
import subprocess
import sys

from helpers import startup
from helpers.config import REPO_ROOT

ONEDNN = ("I0000 00:00:1796324253.463771   10983 port.cc:153] oneDNN custom operations are on. You may see "
          "slightly different numerical results ... set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n")


def test_known_start_up_lines_are_dropped_and_anything_else_kept():
    text = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n" + ONEDNN
            + "E0000 something real went wrong\n")
    assert startup.drop_startup_noise(text) == "E0000 something real went wrong\n"
    assert startup.drop_startup_noise("") == ""


def test_a_fresh_process_imports_tensorflow_without_start_up_lines():
    code = ("import sys; from helpers.startup import import_tensorflow_quietly; import_tensorflow_quietly(); "
            "assert 'tensorflow' in sys.modules; print('imported')")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "imported\n", done.stderr
    assert done.stderr == "", done.stderr  # on CPUs where oneDNN is on, TensorFlow prints two lines here


def test_the_chain_runners_run_record_imports_tensorflow_quietly():
    # results.run_info asks TensorFlow for GPUs: the first TensorFlow import of `reproduce`'s own process
    code = ("import sys; from helpers import results; info = results.run_info(quick=True); "
            "assert 'tensorflow' in sys.modules; print(type(info['machine']['gpus']).__name__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "list\n", done.stderr
    assert done.stderr == "", done.stderr
