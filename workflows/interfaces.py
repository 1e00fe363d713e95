"""Thin Nipype interfaces over :mod:`swigapp.participant`: each calls one library step.

Every interface writes into its node's folder (``runtime.cwd``) and exposes the step's
result dict as ``result`` plus the files the next nodes need.
"""

from __future__ import annotations

from typing import Any

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from swigapp.methods import METHODS
from swigapp.results import GuideRegistration


class _ResultSpec(TraitedSpec):
    result = traits.Dict(desc="the library step's result (paths, figures, seconds)")


class _FitInputSpec(BaseInterfaceInputSpec):
    raw_series = traits.Dict(mandatory=True, desc="kind -> raw qMRI series (io.raw_qmri)")
    fit_plan = traits.Dict(mandatory=True, desc="map name -> the series kind that gives it")
    maps = traits.Dict(desc="map name -> LR map path, for the maps read from files")
    map_suffixes = traits.Dict(desc="map name -> BIDS suffix of its file")
    map_metadata = traits.Dict(desc="map name -> its sidecar")
    label = traits.Str(mandatory=True, desc="sub-X[_ses-Y]")


class _FitOutputSpec(_ResultSpec):
    maps = traits.Dict(desc="map name -> LR map path (fitted and read)")
    map_suffixes = traits.Dict(desc="map name -> BIDS suffix")
    map_metadata = traits.Dict(desc="map name -> sidecar")


class FitQMRI(SimpleInterface):
    """The maps fitted from the raw qMRI series, beside the maps read from files."""

    input_spec = _FitInputSpec
    output_spec = _FitOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.io.raw_qmri import fit_series

        fitted = fit_series(
            self.inputs.raw_series, self.inputs.fit_plan, runtime.cwd, self.inputs.label
        )
        given = {k: getattr(self.inputs, k) for k in ("maps", "map_suffixes", "map_metadata")}
        for key, value in given.items():
            self._results[key] = {**(value if isdefined(value) else {}), **fitted[key]}
        self._results["result"] = fitted["result"]
        return runtime


class _ConformInputSpec(BaseInterfaceInputSpec):
    maps = traits.Dict(mandatory=True, desc="map name (PD, T1, T2) -> LR map path")
    map_suffixes = traits.Dict(mandatory=True, desc="map name -> BIDS suffix of its file")
    reference_guide = File(exists=True, mandatory=True, desc="guide giving the HR voxel size")
    voxel_size = traits.List(traits.Float, desc="HR voxel size in mm (overrides the guide's)")
    map_metadata = traits.Dict(desc="map name -> its sidecar (Units is honoured)")
    lr_model = traits.Enum("auto", "kspace", "slice-profile", usedefault=True)


class _ConformOutputSpec(_ResultSpec):
    lr_file = File(exists=True, desc="LR maps (PD water fraction, T1 s, T2 s), 4D")
    lr_up_file = File(exists=True, desc="LR maps zero-filled onto the HR grid, 4D")
    lr_valid_file = File(exists=True, desc="1 where an LR input voxel was valid, 4D uint8")
    acquisition = traits.Dict(desc="the LR acquisition model (Acquisition.to_record)")


class ConformMaps(SimpleInterface):
    """LR maps in BIDS units, and upsampled onto the HR grid."""

    input_spec = _ConformInputSpec
    output_spec = _ConformOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.participant import conform_maps

        voxel = self.inputs.voxel_size if isdefined(self.inputs.voxel_size) else None
        voxel = voxel or None
        metadata = self.inputs.map_metadata if isdefined(self.inputs.map_metadata) else None
        result = conform_maps(
            self.inputs.maps,
            self.inputs.map_suffixes,
            self.inputs.reference_guide,
            runtime.cwd,
            voxel_size=voxel,
            map_metadata=metadata,
            lr_model=self.inputs.lr_model,
        )
        self._results.update(result=result, lr_file=result["lr_file"])
        self._results["lr_up_file"] = result["lr_up_file"]
        self._results["lr_valid_file"] = result["lr_valid_file"]
        self._results["acquisition"] = result["acquisition"]
        return runtime


class _MaskInputSpec(BaseInterfaceInputSpec):
    lr_file = File(exists=True, mandatory=True)
    lr_up_file = File(exists=True, mandatory=True)
    lr_valid_file = File(exists=True, desc="LR validity mask (which maps were acquired)")
    template = traits.Bool(True, usedefault=True, desc="refine with a registered template")
    seed = traits.Int(0, usedefault=True)


class _MaskOutputSpec(_ResultSpec):
    mask_file = File(exists=True)


class BrainMask(SimpleInterface):
    """Brain mask on the HR grid from the maps and a registered template."""

    input_spec = _MaskInputSpec
    output_spec = _MaskOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.participant import make_mask

        result = make_mask(
            self.inputs.lr_file,
            self.inputs.lr_up_file,
            runtime.cwd,
            template=self.inputs.template,
            seed=self.inputs.seed,
            lr_valid_file=valid if isdefined(valid := self.inputs.lr_valid_file) else None,
        )
        self._results.update(result=result, mask_file=result["mask_file"])
        return runtime


class _RefineMaskInputSpec(BaseInterfaceInputSpec):
    mask = traits.Dict(mandatory=True, desc="BrainMask's result (Masked record)")
    lr_valid_file = File(exists=True, desc="LR validity mask (which maps were acquired)")
    registrations = traits.List(traits.Dict, mandatory=True, desc="RegisterGuide results")
    protocols = traits.Dict(mandatory=True, desc="guide name -> protocol dict")


class RefineMask(SimpleInterface):
    """Where PD or T2 was not acquired, the brain mask cut by a registered bright-CSF guide."""

    input_spec = _RefineMaskInputSpec
    output_spec = _MaskOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.participant import refine_mask

        result = refine_mask(
            self.inputs.mask,
            self.inputs.lr_valid_file or None,
            self.inputs.registrations,
            self.inputs.protocols,
            runtime.cwd,
        )
        self._results.update(result=result, mask_file=result["mask_file"])
        return runtime


def _registration_settings(inputs: Any) -> Any:
    """The RegistrationSettings of a registration node's inputs."""
    from swigapp.registration import RegistrationSettings

    return RegistrationSettings(
        transform=inputs.transform,
        seed=inputs.seed,
        sampling=inputs.sampling,
        full_resolution=inputs.full_resolution,
    )


class _RegisterInputSpec(BaseInterfaceInputSpec):
    lr_up_file = File(exists=True, mandatory=True)
    mask_file = File(exists=True, mandatory=True)
    guide_file = File(exists=True, mandatory=True)
    guide_name = traits.Str(mandatory=True)
    protocol = traits.Dict(mandatory=True, desc="the guide's protocol (Protocol.as_dict)")
    transform = traits.Enum("rigid", "affine", usedefault=True)
    sampling = traits.Float(0.1, usedefault=True, desc="fraction of voxels the metric samples")
    lr_file = File(exists=True, desc="the LR maps: the resolution the target holds")
    full_resolution = traits.Bool(False, usedefault=True, desc="last level at full resolution")
    seed = traits.Int(0, usedefault=True)


class RegisterGuide(SimpleInterface):
    """ANTs registration of one guide to its contrast synthesised from the LR maps."""

    input_spec = _RegisterInputSpec
    output_spec = _ResultSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.participant import register

        settings = _registration_settings(self.inputs)
        result = register(
            self.inputs.lr_up_file,
            self.inputs.mask_file,
            self.inputs.guide_file,
            self.inputs.protocol,
            self.inputs.guide_name,
            runtime.cwd,
            settings,
            lr_file=self.inputs.lr_file or None,
        )
        self._results["result"] = result
        return runtime


class _RegisterAgainInputSpec(BaseInterfaceInputSpec):
    mask = traits.Dict(mandatory=True, desc="RefineMask's result (Masked record)")
    registrations = traits.List(traits.Dict, mandatory=True, desc="RegisterGuide results")
    lr_file = File(exists=True, mandatory=True)
    lr_up_file = File(exists=True, mandatory=True)
    guide_files = traits.Dict(mandatory=True, desc="guide name -> path")
    protocols = traits.Dict(mandatory=True, desc="guide name -> protocol dict")
    transform = traits.Enum("rigid", "affine", usedefault=True)
    sampling = traits.Float(0.1, usedefault=True, desc="fraction of voxels the metric samples")
    full_resolution = traits.Bool(False, usedefault=True, desc="last level at full resolution")
    seed = traits.Int(0, usedefault=True)


class _RegistrationsSpec(TraitedSpec):
    registrations = traits.List(traits.Dict, desc="RegisterGuide results")


class RegisterAgain(SimpleInterface):
    """The guides registered again within the refined mask where T2 was estimated."""

    input_spec = _RegisterAgainInputSpec
    output_spec = _RegistrationsSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.participant import register_again

        settings = _registration_settings(self.inputs)
        self._results["registrations"] = register_again(
            self.inputs.mask,
            self.inputs.registrations,
            self.inputs.lr_file,
            self.inputs.lr_up_file,
            self.inputs.guide_files,
            self.inputs.protocols,
            runtime.cwd,
            settings,
        )
        return runtime


class _MethodSpec(BaseInterfaceInputSpec):
    """What both super-resolution nodes need: the guides, the method and its settings."""

    mask_file = File(exists=True, mandatory=True)
    registrations = traits.List(traits.Dict, mandatory=True, desc="RegisterGuide results")
    protocols = traits.Dict(mandatory=True, desc="guide name -> protocol dict")
    method = traits.Enum(*METHODS, usedefault=True, desc="SR method")
    model_path = traits.Str("", usedefault=True, desc="model.pt ('' = shipped weights)")
    method_options = traits.Dict(
        {}, usedefault=True, desc="the method's own options (MethodOptions.to_record)"
    )
    single_orientation = traits.Bool(
        False, usedefault=True, desc="one slice axis instead of the orientation ensemble"
    )
    seed = traits.Int(0, usedefault=True)
    device = traits.Str("auto", usedefault=True)
    n_threads = traits.Int(0, usedefault=True, desc="torch threads (0 = torch default)")

    def settings(self) -> Any:
        """The participant step's :class:`~swigapp.participant.MethodSettings`."""
        from swigapp.participant import MethodSettings

        return MethodSettings(
            method=self.method,
            model_path=self.model_path or None,
            options=dict(self.method_options),
            seed=self.seed,
            device=self.device,
            n_threads=self.n_threads or None,
            single_orientation=self.single_orientation,
        )

    def guides(self) -> list[GuideRegistration]:
        """The registered guides."""
        return [GuideRegistration.from_record(r) for r in self.registrations]


class _SuperResolveInputSpec(_MethodSpec):
    lr_file = File(exists=True, mandatory=True)
    lr_up_file = File(exists=True, mandatory=True)
    lr_valid_file = File(exists=True, desc="LR validity mask (invalid voxels leave LR terms)")
    acquisition = traits.Dict(desc="the LR acquisition model (conform's record)")


class SuperResolve(SimpleInterface):
    """The method's HR maps before the guard (SWIG after optional adaptation, INR fit, or
    wmri2q): ``result`` is the prediction's record for :class:`GuardMaps`."""

    input_spec = _SuperResolveInputSpec
    output_spec = _ResultSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.participant import LRInputs, predict_maps

        lr_inputs = LRInputs(
            self.inputs.lr_file,
            self.inputs.lr_up_file,
            acquisition=self.inputs.acquisition if isdefined(self.inputs.acquisition) else None,
            lr_valid_file=(
                self.inputs.lr_valid_file if isdefined(self.inputs.lr_valid_file) else None
            ),
        )
        guides = {r.name: r.registered_file for r in self.inputs.guides()}
        self._results["result"] = predict_maps(
            lr_inputs,
            self.inputs.mask_file,
            guides,
            self.inputs.protocols,
            runtime.cwd,
            self.inputs.settings(),
        )
        return runtime


class _GuardInputSpec(_MethodSpec):
    prediction = traits.Dict(mandatory=True, desc="SuperResolve's result (Predicted record)")
    fallback = traits.Bool(
        True, usedefault=True, desc="interpolated LR maps in regions failing the checks"
    )


class _GuardOutputSpec(_ResultSpec):
    sr_file = File(exists=True, desc="SR maps (PD, T1 s, T2 s), 4D")


class GuardMaps(SimpleInterface):
    """The guard over the prediction: where no guide saw, the head mask, the regional checks
    and fallback; then the SR maps and the step's result (its own node, so that changing
    the guard's settings reuses the cached prediction)."""

    input_spec = _GuardInputSpec
    output_spec = _GuardOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.participant import guard_maps

        registrations = self.inputs.guides()
        result = guard_maps(
            self.inputs.prediction,
            self.inputs.mask_file,
            {r.name: r.registered_file for r in registrations},
            self.inputs.protocols,
            runtime.cwd,
            self.inputs.settings(),
            coverage_files=[r.coverage_file for r in registrations],
            fallback=self.inputs.fallback,
        )
        self._results.update(result=result, sr_file=result["sr_file"])
        return runtime


class _SynthesizeInputSpec(BaseInterfaceInputSpec):
    sr_file = File(exists=True, mandatory=True)
    mask_file = File(exists=True, mandatory=True)
    registrations = traits.List(traits.Dict, mandatory=True)
    guide_protocols = traits.Dict(mandatory=True)
    synth_protocols = traits.Dict(desc="contrast name -> protocol dict", usedefault=True)


class Synthesize(SimpleInterface):
    """Contrasts synthesised from the SR maps (guides' own for QC, and requested ones)."""

    input_spec = _SynthesizeInputSpec
    output_spec = _ResultSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.participant import synthesize_contrasts

        registrations = [GuideRegistration.from_record(r) for r in self.inputs.registrations]
        guides = {r.name: r.registered_file for r in registrations}
        self._results["result"] = synthesize_contrasts(
            self.inputs.sr_file,
            self.inputs.mask_file,
            guides,
            self.inputs.guide_protocols,
            self.inputs.synth_protocols,
            runtime.cwd,
        )
        return runtime


class _WriteInputSpec(BaseInterfaceInputSpec):
    out_dir = traits.Str(mandatory=True)
    bids_dir = traits.Str(mandatory=True)
    subject = traits.Str(mandatory=True)
    session = traits.Str("", usedefault=True)
    sources = traits.Dict(mandatory=True, desc="input name -> input path")
    conform = traits.Dict(mandatory=True)
    mask = traits.Dict(mandatory=True)
    registrations = traits.List(traits.Dict, mandatory=True)
    superres = traits.Dict(mandatory=True)
    synthesis = traits.Dict(mandatory=True)
    params = traits.Dict(mandatory=True, desc="run parameters recorded in the sidecars")
    fit = traits.Dict(desc="the raw-series fit's result, when maps were fitted")


class _WriteOutputSpec(TraitedSpec):
    written = traits.List(traits.Str, desc="files written, relative to out_dir")
    qc = traits.Dict(desc="the participant's QC figures")


class WriteDerivatives(SimpleInterface):
    """Publish the participant's derivatives, QC JSON and report (atomic)."""

    input_spec = _WriteInputSpec
    output_spec = _WriteOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.participant import write_outputs

        results = {
            "conform": self.inputs.conform,
            "mask": self.inputs.mask,
            "registration": {r["name"]: r for r in self.inputs.registrations},
            "superres": self.inputs.superres,
            "synthesis": self.inputs.synthesis,
        }
        if isdefined(self.inputs.fit) and self.inputs.fit:
            results["fit"] = self.inputs.fit
        out = write_outputs(
            self.inputs.out_dir,
            self.inputs.bids_dir,
            self.inputs.subject,
            self.inputs.session or None,
            self.inputs.sources,
            results,
            self.inputs.params,
            runtime.cwd,
        )
        self._results.update(written=out["written"], qc=out["qc"])
        return runtime
