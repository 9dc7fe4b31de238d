# flipflow: the PYNQ-Z2 block design around an accelerator, shared by
# build_bitstream.tcl of the HLS project and of the RTL design (Vivado 2022.1
# and later). Sourced by those scripts; each adds its accelerator cell.
#
# The shell: Zynq PS (PYNQ-Z2 board preset, one fabric clock), an AXI DMA in
# simple (register) mode as PYNQ's DMA driver expects, MM2S 8-bit pixel stream
# -> accelerator in_stream, accelerator out_stream 32-bit -> S2MM, both DMA
# masters on S_AXI_HP0 (DDR), the DMA's registers on M_AXI_GP0.

# A project for the PYNQ-Z2 part and board files.
proc flipflow_project {name part here} {
    create_project -force $name $here/vivado -part $part
    set board [lindex [get_board_parts -quiet -latest_file_version tul.com.tw:pynq-z2:part0:*] 0]
    if {$board eq ""} {
        error "PYNQ-Z2 board files (tul.com.tw:pynq-z2) not found: install them into <Vivado>/data/boards/board_files (from the TUL / PYNQ repositories) and rerun"
    }
    set_property board_part $board [current_project]
}

# Newest installed version of a Xilinx IP (the scripts do not pin one Vivado release).
proc latest_ip {name} {
    set defs [lsort -dictionary [get_ipdefs -all xilinx.com:ip:${name}:*]]
    if {[llength $defs] == 0} { error "IP xilinx.com:ip:$name not found in this Vivado" }
    return [lindex $defs end]
}

# PS + DMA + their wiring; the accelerator cell `acc` gets the two streams.
proc flipflow_shell {clock_mhz acc} {
    set ps [create_bd_cell -type ip -vlnv [latest_ip processing_system7] ps7]
    apply_bd_automation -rule xilinx.com:bd_rule:processing_system7 \
        -config {make_external "FIXED_IO, DDR" apply_board_preset "1" Master "Disable" Slave "Disable"} $ps
    set_property -dict [list CONFIG.PCW_FPGA0_PERIPHERAL_FREQMHZ $clock_mhz CONFIG.PCW_USE_S_AXI_HP0 {1} \
        CONFIG.PCW_USE_M_AXI_GP0 {1}] $ps

    set dma [create_bd_cell -type ip -vlnv [latest_ip axi_dma] axi_dma]
    set_property -dict [list CONFIG.c_include_sg {0} CONFIG.c_sg_length_width {26} \
        CONFIG.c_m_axi_mm2s_data_width {32} CONFIG.c_m_axis_mm2s_tdata_width {8} \
        CONFIG.c_m_axi_s2mm_data_width {32} CONFIG.c_s_axis_s2mm_tdata_width {32} \
        CONFIG.c_mm2s_burst_size {16} CONFIG.c_s2mm_burst_size {16}] $dma

    connect_bd_intf_net [get_bd_intf_pins axi_dma/M_AXIS_MM2S] [get_bd_intf_pins $acc/in_stream]
    connect_bd_intf_net [get_bd_intf_pins $acc/out_stream] [get_bd_intf_pins axi_dma/S_AXIS_S2MM]
    flipflow_control axi_dma/S_AXI_LITE

    # Data: both DMA masters -> HP0. The first automation creates the interconnect in
    # front of HP0; the second connects the S2MM master to that same interconnect
    # (automating HP0 twice would try to connect the already connected HP0 slave again).
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master {Auto} Clk_slave {Auto} \
        Clk_xbar {Auto} Master {/axi_dma/M_AXI_MM2S} Slave {/ps7/S_AXI_HP0} intc_ip {Auto} master_apm {0}] \
        [get_bd_intf_pins ps7/S_AXI_HP0]
    set hp0_master [get_bd_intf_pins -of_objects [get_bd_intf_nets -of_objects [get_bd_intf_pins ps7/S_AXI_HP0]] \
        -filter {MODE == Master}]
    set hp0_intc [get_bd_cells -of_objects $hp0_master]
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master {Auto} Clk_slave {Auto} \
        Clk_xbar {Auto} Master {/axi_dma/M_AXI_S2MM} Slave {/ps7/S_AXI_HP0} intc_ip "/[get_property NAME $hp0_intc]" \
        master_apm {0}] [get_bd_intf_pins axi_dma/M_AXI_S2MM]
}

# An AXI-Lite slave on PS GP0 (clock and reset wiring by automation).
proc flipflow_control {slave} {
    apply_bd_automation -rule xilinx.com:bd_rule:axi4 -config [list Clk_master {Auto} Clk_slave {Auto} \
        Clk_xbar {Auto} Master {/ps7/M_AXI_GP0} Slave "/$slave" intc_ip {New AXI Interconnect} master_apm {0}] \
        [get_bd_intf_pins $slave]
}

# Validate, implement, and copy <here>/flipflow.bit and flipflow.hwh (PYNQ needs both, same base name).
proc flipflow_bitstream {project here} {
    assign_bd_address
    validate_bd_design
    save_bd_design
    set bd_file [get_files flipflow_bd.bd]
    generate_target all $bd_file
    set wrapper [make_wrapper -files $bd_file -top]
    add_files -norecurse $wrapper
    set_property top flipflow_bd_wrapper [current_fileset]
    update_compile_order -fileset sources_1

    launch_runs impl_1 -to_step write_bitstream -jobs 4
    wait_on_run impl_1
    if {[get_property PROGRESS [get_runs impl_1]] != "100%"} {
        error "implementation failed: see $here/vivado/$project.runs/impl_1/runme.log"
    }
    file copy -force [glob $here/vivado/$project.runs/impl_1/*.bit] $here/flipflow.bit
    set hwh [glob -nocomplain $here/vivado/$project.gen/sources_1/bd/flipflow_bd/hw_handoff/*.hwh \
                               $here/vivado/$project.srcs/sources_1/bd/flipflow_bd/hw_handoff/*.hwh]
    file copy -force [lindex $hwh 0] $here/flipflow.hwh
    puts "flipflow: wrote $here/flipflow.bit and $here/flipflow.hwh"
}
