"""NVML for the GPU a trial actually runs on.

torch numbers the GPUs it can see (CUDA_VISIBLE_DEVICES, SLURM and Ray hand a process a subset, renumbered from 0)
while NVML numbers every GPU of the machine, so an NVML handle taken by torch's index can be another process's GPU.
The handle is taken by the device's UUID, or by its PCI bus id where torch does not give the UUID.
"""

from __future__ import annotations

import torch


def module():
    """pynvml, initialised; None where there is no driver or library."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - no driver, no library, no permission: the caller records n/a
        return None


def _uuid(props) -> str | None:
    uuid = getattr(props, "uuid", None)
    if uuid is None:
        return None
    text = str(uuid)
    return text if text.startswith(("GPU-", "MIG-")) else f"GPU-{text}"


def _pci_bus_id(props) -> str | None:
    bus = getattr(props, "pci_bus_id", None)
    if bus is None:
        return None
    return f"{getattr(props, 'pci_domain_id', 0):08X}:{bus:02X}:{getattr(props, 'pci_device_id', 0):02X}.0"


def handle(device: torch.device):
    """NVML handle of this torch device, or None."""
    pynvml = module()
    if pynvml is None:
        return None
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    for lookup, key in ((pynvml.nvmlDeviceGetHandleByUUID, _uuid(props)),
                        (pynvml.nvmlDeviceGetHandleByPciBusId_v2, _pci_bus_id(props))):
        if key is None:
            continue
        try:
            return lookup(key)
        except Exception:  # noqa: BLE001 - NVMLError (its subclasses vary by driver): try the next way
            continue
    return None


def process_bytes(handle, pid: int) -> int | None:
    """Device memory NVML attributes to this process, or None where it does not list the process (NVML reports host
    pids, so a process in its own pid namespace is not found) or does not report per-process use."""
    pynvml = module()
    try:
        running = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except Exception:  # noqa: BLE001 - not supported on this device or driver: n/a
        return None
    for process in running:
        if process.pid == pid and isinstance(process.usedGpuMemory, int):
            return process.usedGpuMemory
    return None


def energy_joules(handle) -> float | None:
    """The device's energy counter since the driver loaded (Volta and later), all processes; None where absent."""
    pynvml = module()
    try:
        return pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0  # millijoules
    except Exception:  # noqa: BLE001 - before Volta, or not exposed by the driver: n/a
        return None
