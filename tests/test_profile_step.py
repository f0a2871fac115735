"""tools/profile_step.py: how executed ops are named, classified and joined with the HLO."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                'tools'))
import profile_step  # noqa: E402

HLO = '''
  %dot.47 = f32[25,160]{1,0} dot(%bitcast.90, %copy_bitcast_fusion.13), lhs_contracting_dims={0}, metadata={op_name="jit(step)/transpose(jvp(BCResNetMod))/head_conv/jit(patch_conv)/transpose" stack_frame_id=259}
  ROOT %add_bitcast_fusion.3 = f32[32,128,216,80]{3,2,1,0} fusion(%a, %b), kind=kLoop, metadata={op_name="jit(step)/jvp(BCResNetMod)/stage1/block2/freq_ssn/bn/add" stack_frame_id=1}
  %wrapped_iota = s32[4]{0} iota(), iota_dimension=0
'''


def test_hlo_ops_reads_shape_and_op_name():
    ops = profile_step.hlo_ops(HLO)
    assert ops['dot.47'][0] == 'f32[25,160]{1,0}'
    assert ops['dot.47'][1].endswith('head_conv/jit(patch_conv)/transpose')
    assert ops['add_bitcast_fusion.3'][0].startswith('f32[32,128,216,80]')
    assert ops['wrapped_iota'] == ('s32[4]{0}', '')


def test_layer_of_names_direction_and_layer():
    ops = profile_step.hlo_ops(HLO)
    assert profile_step.layer_of(ops['dot.47'][1]) == 'backward head_conv/patch_conv/transpose'
    assert profile_step.layer_of(ops['add_bitcast_fusion.3'][1]) == 'forward stage1/block2/freq_ssn'


def test_op_kind():
    assert profile_step.op_kind('ynn_fusion.79') == 'matmul / YNNPACK fusion'
    assert profile_step.op_kind('dot.47') == 'matmul / YNNPACK fusion'
    assert profile_step.op_kind('copy_bitcast_fusion.13') == 'layout copy / transpose fusion'
    assert profile_step.op_kind('wrapped_reduce-window.1') == 'reduce-window'
    assert profile_step.op_kind('wrapped_scatter.2') == 'scatter'
    assert profile_step.op_kind('add_select_fusion') == 'elementwise / reduction fusion'
