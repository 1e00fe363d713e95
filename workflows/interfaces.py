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

from swigapp.methods import INR_INITS, INR_STOP_RULES, METHODS


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
        )
        self._results.update(result=result, mask_file=result["mask_file"])
        return runtime


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
        from swigapp.participant import RegistrationSettings, register

        settings = RegistrationSettings(
            transform=self.inputs.transform,
            seed=self.inputs.seed,
            sampling=self.inputs.sampling,
            full_resolution=self.inputs.full_resolution,
        )
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
        self._results["result"] = {"name": self.inputs.guide_name, **result}
        return runtime


class _SuperResolveInputSpec(BaseInterfaceInputSpec):
    lr_file = File(exists=True, mandatory=True)
    lr_up_file = File(exists=True, mandatory=True)
    lr_valid_file = File(exists=True, desc="LR validity mask (invalid voxels leave LR terms)")
    acquisition = traits.Dict(desc="the LR acquisition model (conform's record)")
    mask_file = File(exists=True, mandatory=True)
    registrations = traits.List(traits.Dict, mandatory=True, desc="RegisterGuide results")
    protocols = traits.Dict(mandatory=True, desc="guide name -> protocol dict")
    method = traits.Enum(*METHODS, usedefault=True, desc="SR method")
    model_path = traits.Str("", usedefault=True, desc="model.pt ('' = shipped weights)")
    adapt_steps = traits.Either(
        traits.Int(), traits.Enum("auto"), default=0, usedefault=True, desc="steps or auto"
    )
    inr_max_steps = traits.Int(0, usedefault=True, desc="INR step limit (0 = default)")
    inr_init = traits.Enum(*INR_INITS, usedefault=True, desc="what the INR corrects")
    inr_stop = traits.Enum(*INR_STOP_RULES, usedefault=True, desc="INR stopping rule")
    single_orientation = traits.Bool(
        False, usedefault=True, desc="one slice axis instead of the orientation ensemble"
    )
    fallback = traits.Bool(
        True, usedefault=True, desc="interpolated LR maps in regions failing the checks"
    )
    seed = traits.Int(0, usedefault=True)
    device = traits.Str("auto", usedefault=True)
    n_threads = traits.Int(0, usedefault=True, desc="torch threads (0 = torch default)")


class _SuperResolveOutputSpec(_ResultSpec):
    sr_file = File(exists=True, desc="SR maps (PD, T1 s, T2 s), 4D")


class SuperResolve(SimpleInterface):
    """HR maps by the chosen method (SWIG after optional adaptation, INR fit, or wmri2q)."""

    input_spec = _SuperResolveInputSpec
    output_spec = _SuperResolveOutputSpec

    def _run_interface(self, runtime: Any) -> Any:
        from swigapp.participant import LRInputs, MethodSettings, super_resolve

        guides = {r["name"]: r["registered_file"] for r in self.inputs.registrations}
        coverage = [r["coverage_file"] for r in self.inputs.registrations if "coverage_file" in r]
        lr_inputs = LRInputs(
            self.inputs.lr_file,
            self.inputs.lr_up_file,
            acquisition=self.inputs.acquisition if isdefined(self.inputs.acquisition) else None,
            lr_valid_file=(
                self.inputs.lr_valid_file if isdefined(self.inputs.lr_valid_file) else None
            ),
        )
        settings = MethodSettings(
            method=self.inputs.method,
            model_path=self.inputs.model_path or None,
            adapt_steps=self.inputs.adapt_steps,
            seed=self.inputs.seed,
            device=self.inputs.device,
            n_threads=self.inputs.n_threads or None,
            inr_max_steps=self.inputs.inr_max_steps or None,
            inr_init=self.inputs.inr_init,
            inr_stop=self.inputs.inr_stop,
            single_orientation=self.inputs.single_orientation,
        )
        result = super_resolve(
            lr_inputs,
            self.inputs.mask_file,
            guides,
            self.inputs.protocols,
            runtime.cwd,
            settings,
            coverage_files=coverage,
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

        guides = {r["name"]: r["registered_file"] for r in self.inputs.registrations}
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
